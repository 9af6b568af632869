"""Monitoring artefacts generated from code: the Grafana dashboard the chart ships."""
