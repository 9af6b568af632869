"""fulcrum.resources"""
