"""Precision tiers: each module turns the fp32 ONNX export into one tier's model file."""
