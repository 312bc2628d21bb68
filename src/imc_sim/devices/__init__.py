"""Device physics: profiles, device families (programming, drift, read noise), moment tables."""

from imc_sim.devices.families import FAMILIES, build_family
from imc_sim.devices.family import DeviceFamily

__all__ = ["FAMILIES", "DeviceFamily", "build_family"]
