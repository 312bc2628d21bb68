"""Deployment: a model programmed on a chip, drift sweeps, comparisons, reports and plots."""
