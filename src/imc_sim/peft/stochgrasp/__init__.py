"""Weight-space GRASP (deterministic) and StochGRASP (paper eq. 5-6)."""

from imc_sim.peft.stochgrasp.config import StochGraspConfig
from imc_sim.peft.stochgrasp.layer import StochGraspLayer
from imc_sim.peft.stochgrasp.model import attach_stochgrasp, set_eval_mode, sigma_penalty, weight_scales

__all__ = [
    "StochGraspConfig",
    "StochGraspLayer",
    "attach_stochgrasp",
    "set_eval_mode",
    "sigma_penalty",
    "weight_scales",
]
