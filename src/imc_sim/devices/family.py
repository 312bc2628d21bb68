"""The interface of a device family: one law of programming, drift and read noise on conductances.

A family is physics only. Its laws are deterministic functions of the target (or programmed)
conductances and of standard-normal draws ``z`` (same shape) that the caller supplies, so that the
randomness comes from the chip's explicit generators (one stream per layer, tile and purpose) and a
whole layer is computed in one call, on whatever device its tensors live on:

    g_prog = program(g_target, z)                      once per chip (device-to-device spread)
    nu     = drift_coefficients(g_target, z)           once per chip, at programming
    g_t    = drift(g_prog, nu, t, z)                   per read-out time t (s), with the read
                                                       noise accumulated by then
    var    = read_variance(u)                          per MVM (cycle to cycle), in normalised
                                                       weight units (u = w / mapping scale)

Conductances are in microsiemens (uS), in [g_min, g_max]. A ``weight_level`` family (the paper's
Gaussian weight noise, the ideal device) acts on normalised weights u directly, without a device
pair. ``aihwkit_model()`` returns the aihwkit noise model that states the same physics: tests hold
every family against it in distribution.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor


class DeviceFamily(ABC):
    """One device law (see the module docstring); subclasses set the class attributes."""

    g_max: float = 1.0
    g_min: float = 0.0
    weight_level: bool = False
    drifts: bool = True
    allowed_times: tuple[float, ...] | None = None  # times the law is characterised at (None: any)

    @abstractmethod
    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        """Programmed conductances for targets ``g_target`` and standard normals ``z``."""

    def drift_coefficients(self, g_target: Tensor, z: Tensor) -> Tensor | None:
        """Per-device drift parameters drawn at programming (None: the law has none)."""
        return None

    def drift(self, g_prog: Tensor, coeffs: Tensor | None, t: float, z: Tensor) -> Tensor:
        """Conductances ``t`` seconds after programming (drift and accumulated read noise)."""
        return g_prog

    def read_variance(self, u: Tensor) -> Tensor | None:
        """Variance of each normalised weight ``u`` drawn afresh at every read (None: none)."""
        return None

    @abstractmethod
    def aihwkit_model(self) -> BaseNoiseModel:
        """The aihwkit noise model stating the same physics (the reference in tests)."""
