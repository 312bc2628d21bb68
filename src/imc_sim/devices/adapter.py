"""An imc-sim device family as an aihwkit noise model, so that aihwkit's tiles can use it.

aihwkit's tiles call ``apply_programming_noise(weights)`` once per programming and
``apply_drift_noise(weights, params, t)`` per read-out time; for a conductance-level family these
go through aihwkit's pair converter to ``apply_programming_noise_to_conductance`` /
``generate_drift_coefficients`` / ``apply_drift_noise_to_conductance``, which call the family with
standard normals from torch's global generator (``torch.randn_like``), as aihwkit's own models
draw them. A weight-level family acts on the weights directly. ``cycle_variance`` hands the
family's per-read variance to the periphery (``imc_sim.crossbar.periphery.read_noise``).
"""

from __future__ import annotations

import torch
from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor

from imc_sim.devices.family import DeviceFamily


class FamilyNoiseModel(BaseNoiseModel):
    """aihwkit ``BaseNoiseModel`` whose every law is ``family``'s, fed with ``torch.randn_like``."""

    def __init__(self, family: DeviceFamily):
        super().__init__(SinglePairConductanceConverter(g_max=family.g_max, g_min=family.g_min))
        self.family = family
        self.g_max, self.g_min = family.g_max, family.g_min

    @torch.no_grad()
    def apply_programming_noise(self, weights: Tensor) -> tuple[Tensor, list[Tensor | None]]:
        if not self.family.weight_level:
            return super().apply_programming_noise(weights)
        return self.family.program(weights, torch.randn_like(weights)), [None]

    @torch.no_grad()
    def apply_drift_noise(self, weights: Tensor, drift_noise_parameters: list, t_inference: float) -> Tensor:
        if not self.family.weight_level:
            return super().apply_drift_noise(weights, drift_noise_parameters, t_inference)
        return self._drift(weights, drift_noise_parameters[0], t_inference).clone()

    @torch.no_grad()
    def apply_programming_noise_to_conductance(self, g_target: Tensor) -> Tensor:
        return self.family.program(g_target, torch.randn_like(g_target))

    @torch.no_grad()
    def generate_drift_coefficients(self, g_target: Tensor) -> Tensor | None:
        return self.family.drift_coefficients(g_target, torch.randn_like(g_target))

    @torch.no_grad()
    def apply_drift_noise_to_conductance(
        self, g_prog: Tensor, drift_noise_param: Tensor | None, t_inference: float
    ) -> Tensor:
        return self._drift(g_prog, drift_noise_param, t_inference)

    def _drift(self, g: Tensor, coeffs: Tensor | None, t: float) -> Tensor:
        z = torch.randn_like(g) if self.family.drift_noise else None
        return self.family.drift(g, coeffs, t, z)

    def cycle_variance(self, u: Tensor) -> Tensor | None:
        """The family's per-read variance of normalised tile weights ``u`` (None: no read noise)."""
        return self.family.read_variance(u)
