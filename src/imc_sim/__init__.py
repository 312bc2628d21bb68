"""imc-sim: fine-tune transformers with GRASP / StochGRASP and deploy them on simulated NVM crossbars."""

from imc_sim.torchvision_guard import hide_broken_torchvision

__version__ = "0.1.0"

hide_broken_torchvision()
