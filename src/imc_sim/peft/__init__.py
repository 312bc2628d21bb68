"""Parameter-efficient fine-tuning: GRASP, weight-space GRASP / StochGRASP, and baselines."""

from imc_sim.peft.methods import METHODS, Method, get_method

__all__ = ["METHODS", "Method", "get_method"]
