"""A device profile as an aihwkit noise model: the reference every device family is tested against.

PCM, state-independent and ReRAM profiles build aihwkit's own models (with its 1.1.0 quirks
handled in each family's ``aihwkit_model``, see ``imc_sim.devices.families``); FeFET, Gaussian and
ideal, imc-sim's own laws, build a :class:`~imc_sim.devices.adapter.FamilyNoiseModel`.
"""

from __future__ import annotations

from aihwkit.inference.noise.base import BaseNoiseModel

from imc_sim.devices.families import build_family
from imc_sim.devices.profile import DeviceProfile


def build_noise_model(profile: DeviceProfile) -> BaseNoiseModel:
    """The aihwkit noise model (programming, drift, read noise) of ``profile``."""
    return build_family(profile).aihwkit_model()
