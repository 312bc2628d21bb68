"""Device-aware training: every analog layer's forward passes through the device model.

In training mode, each layer that ``imc-sim deploy`` would put on tiles (every Linear/Conv1D in the
transformer blocks, adapted or frozen) computes

    W_eff, b_eff = the weights it would be programmed with (with gradients to the adapter)
    W_dev        = W_eff + stopgrad(device(W_eff) - W_eff)      (straight-through)
    y            = ADC(DAC(x) W_dev^T + output noise) + b_eff  (rounding straight-through)

``device(W)`` draws the programmed-and-drifted weights from the profile at a drift time (one time,
or a log-uniform draw from a range, per step) and applies the drift compensation; the DAC/ADC,
output noise and row tiles are the profile's periphery, as in deployment. Noise is fresh at every
forward; in eval mode the layers compute the plain digital forward.

Drawing a full aihwkit realization for ~10^7 weights at every step would cost several steps' time,
so the device is sampled through moment tables instead: for each drift time the conditional mean
and std of the drifted, normalised weight given its target, E[w_t | u] and sd[w_t | u] for u in
[-1, 1], measured once by Monte Carlo through the profile's own aihwkit noise model (programming
noise, drift coefficients, drift, read noise). Per step each weight then costs one Gaussian draw
and a table look-up. This keeps each weight's mean and variance at the time exactly as the device
model gives them and approximates its conditional distribution by a Gaussian; deployment
(``imc-sim deploy``) always uses the full model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imc_sim.analog.periphery import Converters, standard_normal
from imc_sim.analog.profile import DeviceProfile
from imc_sim.analog.rpu_config import build_noise_model
from imc_sim.analog.units import format_time
from imc_sim.errors import ImcSimError
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.targets import PRESETS, is_linear, weight_in_out

GRID = 129  # normalised target values in [-1, 1]
SAMPLES = 16384  # Monte-Carlo draws per target value (table mean error ~ std / 128)
RANGE_POINTS = 8  # log-spaced times that stand for a drift range


def drift_grid(start: float, end: float) -> list[float]:
    """One time, or RANGE_POINTS log-spaced times from start to end (seconds)."""
    if start == end:
        return [start]
    lo, hi = math.log(max(start, 1e-3)), math.log(end)
    return [math.exp(lo + (hi - lo) * k / (RANGE_POINTS - 1)) for k in range(RANGE_POINTS)]


def _weight_level(profile: DeviceProfile) -> bool:
    """Noise defined on weights, not conductances (no per-tile normalisation applies)."""
    return profile.model in ("gaussian", "ideal")


@dataclass
class MomentTables:
    """E[w_t | u] and sd[w_t | u] on a grid of u in [-1, 1], one row per drift time."""

    times: list[float]
    mean: Tensor  # [times, GRID]
    std: Tensor  # [times, GRID]
    weight_level: bool = False  # noise independent of the target: mean = u exactly, std constant

    @classmethod
    @torch.no_grad()
    def measure(cls, profile: DeviceProfile, times: list[float], seed: int = 0) -> MomentTables:
        profile.check_times(times)
        model = build_noise_model(profile)
        u = torch.linspace(-1.0, 1.0, GRID)
        targets = u.repeat_interleave(SAMPLES).view(GRID, SAMPLES)
        means, stds = [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for t in times:
                programmed, params = model.apply_programming_noise(targets)
                drifted = model.apply_drift_noise(programmed, params, t)
                means.append(drifted.mean(dim=1))
                stds.append(drifted.std(dim=1))
        return cls(list(times), torch.stack(means), torch.stack(stds), _weight_level(profile))

    def __post_init__(self) -> None:
        # per grid cell: (mean, mean slope, std, std slope), one row gathered per weight
        self.cells = torch.stack([self.mean[:, :-1], self.mean.diff(dim=1),
                                  self.std[:, :-1], self.std.diff(dim=1)], dim=-1).contiguous()

    @staticmethod
    def positions(u: Tensor) -> tuple[Tensor, Tensor]:
        """Grid cell index and fraction within it of each normalised target (time-independent)."""
        pos = (u.clamp(-1, 1) + 1).mul_((GRID - 1) / 2)
        idx = pos.long().clamp_(max=GRID - 2)
        return idx, pos.sub_(idx)

    def at(self, u: Tensor, idx: Tensor, frac: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(mean, std) for time index ``k`` at targets ``u`` whose :meth:`positions` are given."""
        if self.weight_level:
            return u.clone(), torch.full_like(u, self.std[k].mean().item())
        cell = self.cells[k].index_select(0, idx.view(-1)).view(*idx.shape, 4)
        mean = torch.addcmul(cell[..., 0], cell[..., 1], frac)
        return mean, torch.addcmul(cell[..., 2], cell[..., 3], frac)

    def lookup(self, u: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(mean, std) at normalised targets ``u`` for time index ``k`` (linear interpolation)."""
        return self.at(u, *self.positions(u), k)


def mapping_scale(profile: DeviceProfile, w: Tensor) -> Tensor:
    """The weight that maps onto g_max: per column, per layer, or 1 for weight-level noise."""
    mapping = profile.periphery.weight_scaling
    if _weight_level(profile) and mapping == "none":
        return torch.ones(())
    if mapping == "per-column":
        return w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    return w.abs().max().clamp_min(1e-12)


def effective_weight(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(W [out, in], b) that ``module`` would be programmed with, differentiable in its adapter:
    imc-sim adapter layers, peft LoRA layers (W + scaling B A; LoRA dropout is not applied) and
    plain layers."""
    if isinstance(module, AdapterLayer):
        w, b = module.effective_weight()
        return w.T, b
    if hasattr(module, "base_layer"):
        base = module.base_layer
        w = weight_in_out(base).T
        for name in module.active_adapters:
            delta = module.get_delta_weight(name)
            w = w + (delta.T if getattr(module, "fan_in_fan_out", False) else delta)
        return w, base.bias
    return weight_in_out(module).T, module.bias


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, AdapterLayer) or hasattr(module, "base_layer") or is_linear(module)


def analog_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost adapter / LoRA / plain Linear-Conv1D modules inside the transformer blocks."""
    block = re.compile(PRESETS["all-linear"])
    chosen: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if any(name.startswith(n + ".") for n, _ in chosen):
            continue
        if _is_layer(module) and block.fullmatch(name):
            chosen.append((name, module))
    return chosen


class DeviceAwareForward:
    """The training-time forward of one analog layer (see the module docstring)."""

    def __init__(self, module: nn.Module, profile: DeviceProfile, tables: MomentTables,
                 clock: list[int]):
        self.module, self.profile, self.tables, self.clock = module, profile, tables, clock
        self.conv = Converters.from_periphery(profile.periphery)
        self.rows = profile.periphery.tile_rows
        self.original = module.forward
        self.frozen: tuple[Tensor, ...] | None = None  # (scale, u, idx, frac) of a frozen layer

    @torch.no_grad()
    def device_delta(self, w: Tensor) -> Tensor:
        """device(W) - W: programmed, drifted, compensated, minus the target (no gradient).

        A frozen layer's weights never change, so its mapping and grid positions are kept."""
        if w.requires_grad or self.frozen is None:
            scale = mapping_scale(self.profile, w)
            u = w / scale
            cached = (scale, u, *self.tables.positions(u))
            if not w.requires_grad:
                self.frozen = cached
        else:
            cached = self.frozen
        scale, u, idx, frac = cached
        mean, std = self.tables.at(u, idx, frac, self.clock[0])
        drifted = mean.add_(std.mul_(standard_normal(tuple(u.shape))))
        if self.profile.compensation == "global":
            drifted.mul_(u.abs().mean() / drifted.abs().mean().clamp_min(1e-12))
        elif self.profile.compensation == "per-column":
            drifted.mul_(u.abs().mean(1, keepdim=True) / drifted.abs().mean(1, keepdim=True).clamp_min(1e-12))
        return (drifted - u).mul_(scale)

    def __call__(self, x: Tensor) -> Tensor:
        if not self.module.training:
            return self.original(x)
        w, b = effective_weight(self.module)
        w = w + self.device_delta(w)
        flat = x.reshape(-1, x.shape[-1])
        y = sum(self._tile(flat[:, s : s + self.rows], w[:, s : s + self.rows])
                for s in range(0, flat.shape[1], self.rows))
        if b is not None:
            y = y + b
        return y.view(*x.shape[:-1], -1)

    def _tile(self, x: Tensor, w: Tensor) -> Tensor:
        """One row tile with straight-through DAC/ADC rounding and fresh output noise."""
        conv = self.conv
        if conv.perfect:
            return F.linear(x, w)
        scale = x.detach().abs().amax(-1, keepdim=True).clamp_min(1e-12) if conv.managed else None
        codes = x / (conv.d_in * scale) if scale is not None else x / conv.d_in
        if conv.quant_in:
            codes = codes + (codes.detach().round() - codes.detach())
        codes = codes.clamp(-conv.inp_bound, conv.inp_bound)
        step = conv.adc_step if conv.adc_step > 0 else 1.0
        y = F.linear(codes, w) / step
        if conv.out_noise > 0:
            y = y + (conv.out_noise / step) * standard_normal(tuple(y.shape))
        if conv.adc_step > 0:
            y = y + (y.detach().round() - y.detach())
        y = y.clamp(-conv.out_bound / step, conv.out_bound / step) * (conv.d_in * step)
        return y * scale if scale is not None else y


class DeviceTraining:
    """Training forwards of ``model``'s analog layers see ``profile`` at a drift time drawn per
    forward (log-uniform over the grid standing for ``drift``). Module structure and state-dict
    names are unchanged; :meth:`detach` restores the plain forwards."""

    def __init__(self, model: nn.Module, profile: DeviceProfile, drift: tuple[float, float]):
        if drift[0] != drift[1] and not profile.drifts:
            raise ImcSimError(f"device {profile.name!r} has no drift; a drift range "
                              f"{format_time(drift[0])}..{format_time(drift[1])} means nothing for it")
        self.tables = MomentTables.measure(profile, drift_grid(*drift))
        clock = [0]
        layers = analog_layers(model)
        if not layers:
            raise ImcSimError("no Linear/Conv1D layer inside transformer blocks to train device-aware")
        self.names = [name for name, _ in layers]
        self.modules = [module for _, module in layers]
        for module in self.modules:
            module.forward = DeviceAwareForward(module, profile, self.tables, clock)
        n = len(self.tables.times)
        self.hook = model.register_forward_pre_hook(
            lambda *_: clock.__setitem__(0, int(torch.randint(n, (1,)))))

    def detach(self) -> None:
        self.hook.remove()
        for module in self.modules:
            del module.forward


@torch.no_grad()
def sigma_target_auto(model: nn.Module, profile: DeviceProfile, t_seconds: float) -> float:
    """The device's weight error at ``t_seconds``, as one std in weight units (eq. 6's target).

    sqrt(mean over every analog weight w of (alpha * sd[w_t | u] * scale)^2), u = w / scale the
    normalised target, scale the profile's weight mapping, alpha the drift compensation's gain
    (mean |u| / mean |E[w_t | u]| per layer). Monte Carlo with a fixed seed: the same profile and
    time always give the same number.
    """
    tables = MomentTables.measure(profile, [t_seconds])
    total, count = 0.0, 0
    for _, module in analog_layers(model):
        w = effective_weight(module)[0]
        scale = mapping_scale(profile, w)
        u = w / scale
        mean, std = tables.lookup(u, 0)
        alpha = (u.abs().mean() / mean.abs().mean().clamp_min(1e-12)
                 if profile.compensation != "none" else 1.0)
        total += float(((alpha * std * scale) ** 2).sum())
        count += w.numel()
    return math.sqrt(total / count)
