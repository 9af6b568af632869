"""fulcrum.metrics"""
