"""imc-sim: fine-tune transformers with GRASP / StochGRASP and deploy them on simulated NVM crossbars."""

__version__ = "0.1.0"
