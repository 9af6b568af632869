"""fulcrum.simulate"""
