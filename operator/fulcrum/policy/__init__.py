"""fulcrum.policy"""
