"""GRASP: grouped activation shared parameterization (paper eq. 1-2)."""

from imc_sim.peft.grasp.config import GraspConfig
from imc_sim.peft.grasp.layer import GraspLayer
from imc_sim.peft.grasp.model import attach_grasp

__all__ = ["GraspConfig", "GraspLayer", "attach_grasp"]
