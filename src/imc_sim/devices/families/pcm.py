"""Phase-change memory: aihwkit 1.1.0's ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019),
or ``CustomDriftPCMLikeNoiseModel`` when the profile gives a drift table.

Conductances in uS, times in s; x = g_target / g_max, z standard normals:

- programming: g_prog = max(0, g_target + scale_p * sigma_p(x) * z),
  sigma_p(x) = (c0 + c1 x + c2 x^2 + ...) * g_max / coeffs_g_ref  (the fit is in uS at coeffs_g_ref);
- drift coefficient, once per device: nu = scale_d * |mu(x) + s(x) z|, with
  mu = clip(-0.0155 ln x + 0.0244, 0.049, 0.1), s = clip(-0.0125 ln x - 0.0059, 0.008, 0.045)
  (x clipped below at 1e-7), or mu, s interpolated linearly in g_target from the table;
- drift and accumulated 1/f read noise at t (tau = t + t0):
  g_d = g_prog (tau / t0)^(-nu) for t > 0 (else g_prog),
  g_t = max(0, g_d + |g_d| * scale_r * q * sqrt(ln((tau + t_read) / (2 t_read))) * z),
  q = min(0.2, 0.0088 / max(1e-3, (|g_prog| / g_max)^0.65)). The read term is there at t = 0 too.
- per-read (cycle-to-cycle) noise, fresh at every MVM: aihwkit's ``WeightNoiseType.PCM_READ``
  (``forward.w_noise`` = 0.0175 in ``StandardHWATrainingPreset``): each output gets
  per_read * sqrt(sum_j |u_j| x_j^2) * z, i.e. a per-weight variance per_read^2 |u| in normalised
  weight units (:meth:`PCM.read_variance`; rpucuda's ``applyOutputWeightNoise``). aihwkit's torch
  tiles refuse it, so the reference tests run with per_read = 0.

aihwkit quirks (tests/test_aihwkit_quirks.py): ``prog_coeff_g_max_reference`` passed to the
constructor is never stored, and explicit coefficients silently take g_max as their reference, so
:meth:`PCM.aihwkit_model` sets the reference on the object; ``CustomDriftPCMLikeNoiseModel`` checks
its table against its ``g_converter`` argument, so it is given one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from aihwkit.inference.noise.pcm import CustomDriftPCMLikeNoiseModel, PCMLikeNoiseModel
from torch import Tensor

from imc_sim.devices.family import CompiledLaw, DeviceFamily, ReadNoise, polynomial
from imc_sim.devices.schema import SCALE, T0, T_READ, Num, Nums
from imc_sim.errors import ImcSimError

if TYPE_CHECKING:
    from imc_sim.devices.profile import DeviceProfile

ZERO_CLIP = 1e-7  # aihwkit's floor on g / g_max inside the logarithms of the nu fit


def power_law_drift(g_prog: Tensor, nu: Tensor, t: float, t0: float) -> Tensor:
    """g_prog ((t + t0) / t0)^(-nu) for t > 0, as g_prog exp(-nu ln((t + t0) / t0)) (one exp per
    device: torch's power of a number to a tensor is 5x slower); g_prog itself at t = 0 (aihwkit's
    ``t > t_0`` test)."""
    return g_prog * nu.mul(-math.log((t + t0) / t0)).exp_() if t > 0 else g_prog


def one_over_f(t: float, t0: float, t_read: float) -> float:
    """sqrt(ln((t + t0 + t_read) / (2 t_read))): the 1/f noise accumulated since programming."""
    return math.sqrt(math.log((t + t0 + t_read) / (2 * t_read)))


COUNTED_POINTS = 32  # a drift table's inner points up to which its segments are found by counting


@dataclass(frozen=True)
class DriftTable:
    """nu mean and std at conductances ``g`` (uS, ascending), interpolated linearly between."""

    g: tuple[float, ...]
    nu_mean: tuple[float, ...]
    nu_std: tuple[float, ...]

    def interpolate(self, g_target: Tensor) -> tuple[Tensor, Tensor]:
        """(nu mean, nu std) at ``g_target``, linear between the table's points and constant
        beyond its ends (numpy.interp, as aihwkit): each conductance's segment [g_i, g_i+1] is the
        last whose start is <= it (:meth:`segments`), so that on a step (a repeated conductance)
        the upper value holds from the step on; on segment i a value is a_i + b_i g (:func:`_lines`)
        at g clamped to the table's span."""
        i = self.segments(g_target).view(-1)
        g = g_target.clamp(self.g[0], self.g[-1])

        def at(values: tuple[float, ...]) -> Tensor:
            intercept, slope = (_on(line, g).index_select(0, i).view_as(g) for line in _lines(self.g, values))
            return intercept.addcmul_(slope, g)

        return at(self.nu_mean), at(self.nu_std)

    def segments(self, g_target: Tensor) -> Tensor:
        """The index i of each conductance's segment [g_i, g_i+1] (int64): the last whose start is
        <= it, clamped to the table's segments: #{1 <= k <= n - 2: g_k <= g_target} for a table of
        n points, counted in one comparison per inner point where there are few (3x faster than a
        binary search for pcm-chip's 13), else by ``torch.searchsorted``."""
        inner = self.g[1:-1]
        if len(inner) > COUNTED_POINTS:
            g = _on(self.g, g_target)
            return torch.searchsorted(g, g_target, right=True).sub_(1).clamp_(0, len(self.g) - 2)
        count = torch.zeros(g_target.shape, dtype=torch.uint8, device=g_target.device)
        for g_k in inner:
            count.add_(g_target >= g_k)
        return count.long()


def _on(values: tuple[float, ...], like: Tensor) -> Tensor:
    """``values`` as a tensor of ``like``'s dtype on its device."""
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _lines(g: tuple[float, ...], values: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(a_i, b_i) of the line a_i + b_i x through (g_i, v_i) and (g_i+1, v_i+1) of each segment; a
    step (g_i = g_i+1) is a constant, v_i for the first segment (which a step holds only below the
    table) and v_i+1 for any other (on and after the step, as numpy.interp)."""
    intercepts, slopes = [], []
    for i, (g0, g1, v0, v1) in enumerate(zip(g[:-1], g[1:], values[:-1], values[1:], strict=True)):
        slope = (v1 - v0) / (g1 - g0) if g1 > g0 else 0.0
        intercepts.append(v0 - slope * g0 if g1 > g0 else (v0 if i == 0 else v1))
        slopes.append(slope)
    return tuple(intercepts), tuple(slopes)


@dataclass(frozen=True)
class PCMParams:
    g_max: float  # uS
    coeffs: tuple[float, ...]  # uS, programming-noise polynomial in g / g_max
    coeffs_g_ref: float  # uS, the g_max the coefficients were fitted at
    prog_scale: float
    t0: float  # s
    drift_scale: float
    t_read: float  # s
    read_scale: float
    per_read: float = 0.0  # std of the PCM_READ per-read noise, normalised weight units
    table: DriftTable | None = None


class PCM(DeviceFamily):
    """The PCM law of the module docstring (aihwkit ``PCMLikeNoiseModel``)."""

    model = "pcm"
    schema = {
        "conductance": {"g_max": Num(25.0, 0.0, 1e4, open_lo=True)},
        "programming": {"coeffs": Nums([0.26348, 1.9650, -1.1731]),
                        "coeffs_g_ref": Num(25.0, 0.0, 1e4, open_lo=True), "scale": SCALE},
        "drift": {"t0": T0, "scale": SCALE,
                  "table": {"g": Nums(None, 0.0, 2, ascending=True), "nu_mean": Nums(None, 0.0, 2),
                            "nu_std": Nums(None, 0.0, 2)}},
        "read_noise": {"t_read": T_READ, "scale": SCALE, "per_read": Num(0.0, 0.0, 1.0)},
    }

    def __init__(self, params: PCMParams):
        self.params = params
        self.g_max = params.g_max

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> PCM:
        prog, drift, read = profile.programming, profile.drift, profile.read_noise
        table = drift.get("table")
        return cls(PCMParams(
            g_max=profile.conductance["g_max"], coeffs=tuple(prog["coeffs"]),
            coeffs_g_ref=prog["coeffs_g_ref"], prog_scale=prog["scale"], t0=drift["t0"],
            drift_scale=drift["scale"], t_read=read["t_read"], read_scale=read["scale"],
            per_read=read["per_read"],
            table=None if table is None else DriftTable(
                tuple(table["g"]), tuple(table["nu_mean"]), tuple(table["nu_std"])),
        ))

    @classmethod
    def check_profile(cls, profile: DeviceProfile) -> None:
        table, g_max = profile.drift.get("table"), profile.conductance["g_max"]
        if table is not None and (table["g"][0] > 0.0 or table["g"][-1] < g_max):
            raise ImcSimError(f"profile {profile.path}: field drift.table.g = {table['g']} must span "
                              f"the conductances 0 to g_max = {g_max:g} uS")

    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        p = self.params
        sigma = polynomial(p.coeffs, g_target / p.g_max) * (p.g_max / p.coeffs_g_ref)
        return (g_target + p.prog_scale * sigma * z).clamp_(min=0.0)

    def drift_coefficients(self, g_target: Tensor, z: Tensor) -> Tensor:
        p = self.params
        if p.table is None:
            log_x = torch.log((g_target / p.g_max).abs().clamp(min=ZERO_CLIP))
            mean = (-0.0155 * log_x + 0.0244).clamp(0.049, 0.1)
            std = (-0.0125 * log_x - 0.0059).clamp(0.008, 0.045)
        else:
            mean, std = p.table.interpolate(g_target)
        return torch.addcmul(mean, std, z).abs_().mul_(p.drift_scale)

    def drift(self, g_prog: Tensor, coeffs: Tensor | None, t: float, z: Tensor | None) -> Tensor:
        p = self.params
        g_d = power_law_drift(g_prog, coeffs, t, p.t0)
        q = (0.0088 / ((g_prog.abs() / p.g_max) ** 0.65).clamp(min=1e-3)).clamp(max=0.2)
        sigma = q * (p.read_scale * one_over_f(t, p.t0, p.t_read))
        return (g_d + g_d.abs() * sigma * z).clamp_(min=0.0)

    def compiled_law(self, t: float | None) -> CompiledLaw:
        """[g_max, g_min, prog_scale, g_max / coeffs_g_ref, drift_scale, ln((t + t0) / t0) (0 at
        programming or t = 0), read scale x the 1/f noise at t, number of coefficients,
        coefficients...] and the drift table as g, then the lines (:func:`_lines`) of nu's mean and
        std (intercepts, slopes)."""
        p = self.params
        log_time = math.log((t + p.t0) / p.t0) if t is not None and t > 0 else 0.0
        read = p.read_scale * one_over_f(t, p.t0, p.t_read) if t is not None else 0.0
        params = (p.g_max, self.g_min, p.prog_scale, p.g_max / p.coeffs_g_ref, p.drift_scale, log_time, read,
                  float(len(p.coeffs)), *p.coeffs)
        if p.table is None:
            return CompiledLaw(params)
        mean, std = _lines(p.table.g, p.table.nu_mean), _lines(p.table.g, p.table.nu_std)
        return CompiledLaw(params, (*p.table.g, *mean[0], *mean[1], *std[0], *std[1]), len(p.table.g))

    def read_noise(self) -> ReadNoise | None:
        """per_read^2 |u| (aihwkit's PCM_READ weight noise; None when per_read is 0)."""
        per_read = self.params.per_read
        return None if per_read == 0 else ReadNoise(c1=per_read**2)

    def aihwkit_model(self) -> PCMLikeNoiseModel:
        p = self.params
        kwargs = {"prog_coeff": list(p.coeffs), "t_0": p.t0, "t_read": p.t_read,
                  "prog_noise_scale": p.prog_scale, "read_noise_scale": p.read_scale,
                  "drift_scale": p.drift_scale,
                  "g_converter": SinglePairConductanceConverter(g_max=p.g_max)}
        if p.table is None:
            model = PCMLikeNoiseModel(**kwargs)
        else:
            table = {"g_lst": list(p.table.g), "nu_mean_lst": list(p.table.nu_mean),
                     "nu_std_lst": list(p.table.nu_std)}
            model = CustomDriftPCMLikeNoiseModel(table, **kwargs)
        model.prog_coeff_g_max_reference = p.coeffs_g_ref
        return model
