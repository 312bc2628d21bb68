"""The interface of a device family: one law of programming, drift and read noise on conductances.

A family is physics only, one module per law in ``imc_sim.devices.families`` (its parameters, its
profile fields and its laws). Its laws are deterministic functions of the target (or programmed)
conductances and of standard-normal draws ``z`` (same shape) that the caller supplies, so that the
randomness comes from the chip's explicit generators (one stream per layer, tile and purpose) and a
whole layer is computed in one call, on whatever device its tensors live on:

    g_prog = program(g_target, z)                      once per chip (device-to-device spread)
    nu     = drift_coefficients(g_target, z)           once per chip, at programming
    g_t    = drift(g_prog, nu, t, z)                   per read-out time t (s), with the read
                                                       noise accumulated by then
    var    = read_variance(u)                          per MVM (cycle to cycle), in normalised
                                                       weight units (u = w / mapping scale): a
                                                       quadratic in |u| (``read_noise``)

``drift`` may return ``g_prog`` itself where the law leaves it unchanged (no drift, or t = 0 for a
law without read noise); a family whose ``drift_noise`` is False ignores ``z`` (pass None).

Conductances are in microsiemens (uS), in [g_min, g_max]. A ``weight_level`` family (the paper's
Gaussian weight noise, the ideal device) acts on normalised weights u directly, without a device
pair. ``aihwkit_model()`` returns the aihwkit noise model that states the same physics: tests hold
every family against it in distribution.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor

from imc_sim.devices.schema import Schema

if TYPE_CHECKING:
    from imc_sim.devices.profile import DeviceProfile


def polynomial(coeffs: Sequence[float], x: Tensor) -> Tensor:
    """c0 + c1 x + c2 x^2 + ..., summed as aihwkit sums its programming-noise fits."""
    out, power = torch.full_like(x, coeffs[0]), torch.ones_like(x)
    for c in coeffs[1:]:
        power = power * x
        out = out + c * power
    return out


@dataclass(frozen=True)
class ReadNoise:
    """Per-read (cycle-to-cycle) variance of a normalised weight u, a quadratic in |u|:
    var = c0 + c1 |u| + c2 u^2 (normalised weight units squared)."""

    c0: float = 0.0
    c1: float = 0.0
    c2: float = 0.0

    def variance(self, u: Tensor) -> Tensor:
        """c0 + c1 |u| + c2 u^2, elementwise."""
        a = u.abs()
        return (a * self.c2 + self.c1).mul_(a).add_(self.c0)

    def scaled(self, factor: float) -> ReadNoise:
        """The variance times ``factor``."""
        return ReadNoise(self.c0 * factor, self.c1 * factor, self.c2 * factor)

    def plus(self, constant: float) -> ReadNoise:
        """The variance plus ``constant`` for every weight."""
        return ReadNoise(self.c0 + constant, self.c1, self.c2)


@dataclass(frozen=True)
class CompiledLaw:
    """A family's law as the compiled device pass takes it (``crossbar/_epilogue.c``, pcm_tiles):
    its numbers ``params`` and, where it has one, a piecewise-linear table (``table``, of ``points``
    conductances)."""

    params: tuple[float, ...]
    table: tuple[float, ...] | None = None
    points: int = 0


class DeviceFamily(ABC):
    """One device law (see the module docstring); subclasses set the class attributes."""

    model: ClassVar[str]  # the profile's ``model:`` value that selects this family
    schema: ClassVar[Schema]  # the profile's fields for this family, per section
    g_max: float = 1.0
    g_min: float = 0.0
    weight_level: bool = False
    drifts: bool = True
    drift_noise: bool = True  # drift() reads its z (False: pass None)
    allowed_times: tuple[float, ...] | None = None  # times the law is characterised at (None: any)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    @abstractmethod
    def from_profile(cls, profile: DeviceProfile) -> DeviceFamily:
        """The family with the parameters of a validated ``profile``."""

    @classmethod
    def check_profile(cls, profile: DeviceProfile) -> None:
        """Checks across fields beyond the schema's ranges (raise ImcSimError naming the field)."""
        return None

    @abstractmethod
    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        """Programmed conductances for targets ``g_target`` and standard normals ``z`` (shaped
        like z; g_target may be smaller and broadcast against it: one target for several devices,
        so every law here is elementwise and never writes into g_target)."""

    def drift_coefficients(self, g_target: Tensor, z: Tensor) -> Tensor | None:
        """Per-device drift parameters drawn at programming (None: the law has none)."""
        return None

    def drift(self, g_prog: Tensor, coeffs: Tensor | None, t: float, z: Tensor | None) -> Tensor:
        """Conductances ``t`` seconds after programming (drift and accumulated read noise)."""
        return g_prog

    def read_noise(self) -> ReadNoise | None:
        """The law of the per-read variance (None: the family has no read noise)."""
        return None

    def read_variance(self, u: Tensor) -> Tensor | None:
        """Variance of each normalised weight ``u`` drawn afresh at every read (None: none)."""
        law = self.read_noise()
        return None if law is None else law.variance(u)

    def compiled_law(self, t: float | None) -> CompiledLaw | None:
        """The law (programming for ``t`` None, else drift to ``t`` s) as the compiled device
        pass takes it; None where the pass does not implement this family (the torch path runs)."""
        return None

    @abstractmethod
    def aihwkit_model(self) -> BaseNoiseModel:
        """The aihwkit noise model stating the same physics (the reference in tests)."""
