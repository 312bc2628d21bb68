"""Crossbar execution: weights onto tiles, the tile MVM and its periphery, torch and compiled kernels."""
