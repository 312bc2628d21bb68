"""Analog crossbar deployment on aihwkit: device profiles, tiles, drift and evaluation sweeps."""
