"""Device-aware training: every analog layer's training forward is the chip's output.

In training mode, each layer that ``imc-sim deploy`` would put on tiles (every Linear/Conv1D in the
transformer blocks, adapted or frozen) computes, for its input x,

    W, b   = the weights and bias it would be programmed with (GRASP merged, W + mu + sigma eps for
             StochGRASP with this forward's eps, W + s B A for LoRA, W for frozen layers)
    U      = W / m, m the weight mapping's scale (per column, per layer, or 1)
    U_t    ~ the device at a drift time t (one time, or one drawn log-uniformly from a range per
             step): programmed, drifted, read, plus one read's weight noise (the family's
             cycle-to-cycle variance and the periphery's w_noise, :func:`read_noise`)
    y      = ADC(DAC(x) U_t^T + output noise) * m * alpha_t + b     (deploy's periphery and
             product: imc_sim.crossbar.periphery.analog_mvm; alpha_t the drift compensation)

and passes y on as the layer's output. The gradient is the digital layer's (straight through the
device and the converters): d/dx and d/d(adapter) of the layer's own forward, x W^T + b. That
backward needs the same products as plain training (GRASP still differentiates its input
transform, not its merged weights), so a device-aware step costs a plain step plus the device's
draws and the periphery (the forward product runs in float32: the weights change at every step,
and packing them for deploy's int8 product costs more than it saves). In eval mode the layers
compute the plain digital forward. With static input ranges, DAC(x) divides each row tile's inputs by the
range calibrated once for it (:mod:`imc_sim.training.static_ranges`), which the checkpoint keeps
for deploy. The approximations against ``imc-sim deploy``: drift compensation and per-tile weight
scaling act per layer here, per tile there; the per-read weight noise is drawn once per forward,
shared by its tokens (as aihwkit's hardware-aware training draws its weight noise once per
mini-batch), where deploy draws it afresh for every read: each output has the same variance,
sum_j x_j^2 var(U_t[i, j]), but a batch's tokens see the same read, and the forward needs no
second, variance product.

Drawing a full aihwkit realization for ~10^7 weights at every step would cost several steps' time,
so the device is sampled through quantile tables instead (:mod:`imc_sim.devices.quantiles`): for
each drift time the quantiles of the drifted, normalised weight given its target u in [-1, 1],
measured once by Monte Carlo through the profile's own aihwkit noise model (programming noise,
drift coefficients, drift, read noise). Per step each weight then costs one normal draw z and an
inverse-CDF look-up, w = Q_u(Phi(z)), which keeps the conditional distribution's skew and tails
(the drift exponents' spread), not only its mean and variance; deployment (``imc-sim deploy``)
always uses the full model.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imc_sim.crossbar import epilogue
from imc_sim.crossbar.input_ranges import StoredRanges
from imc_sim.crossbar.periphery import Converters, TileStack, analog_mvm, read_noise
from imc_sim.crossbar.streams import ChipStreams, Stream
from imc_sim.devices import build_family
from imc_sim.devices.moments import weight_level
from imc_sim.devices.profile import DeviceProfile
from imc_sim.devices.quantiles import Z_MAX, Z_STEP, QuantileTables
from imc_sim.errors import ImcSimError
from imc_sim.peft.grasp import GraspLayer
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.targets import weight_in_out
from imc_sim.training.analog_layers import device_layers
from imc_sim.training.static_ranges import NOT_CALIBRATED, calibrate_inputs, row_tile_grid, stored_ranges
from imc_sim.units import format_time

RANGE_POINTS = 8  # log-spaced times that stand for a drift range


def drift_grid(start: float, end: float) -> list[float]:
    """One time, or RANGE_POINTS log-spaced times from start to end (seconds)."""
    if start == end:
        return [start]
    lo, hi = math.log(max(start, 1e-3)), math.log(end)
    return [math.exp(lo + (hi - lo) * k / (RANGE_POINTS - 1)) for k in range(RANGE_POINTS)]


def mapping_scale(profile: DeviceProfile, w: Tensor) -> Tensor:
    """The weight that maps onto g_max: per column, per layer, or 1 for weight-level noise."""
    mapping = profile.periphery.weight_scaling
    if weight_level(profile) and mapping == "none":
        return w.new_ones(())
    if mapping == "per-column":
        return w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    return w.abs().max().clamp_min(1e-12)


def effective_weight(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(W [out, in], b) that ``module`` would be programmed with, differentiable in its adapter:
    imc-sim adapter layers, peft LoRA layers (W + scaling B A) and plain layers."""
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


class ReplacedValue(torch.autograd.Function):
    """The product x W (W as [D_in, D_out]) whose value is ``value``, the chip's output: the forward
    passes ``value`` on, the backward is the digital product's (dL/dx = g W^T, dL/dW = x^T g)."""

    @staticmethod
    def forward(ctx, x: Tensor, w_in_out: Tensor, value: Tensor) -> Tensor:
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, w_in_out)
        return value

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])  # one GEMM (a batched operand would take bmm)
        grad_x = (flat @ w.T).view(*grad.shape[:-1], -1) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = x.reshape(-1, x.shape[-1]).T @ flat
        return grad_x, grad_w, None


class DeviceSampler:
    """One layer on the device: draws its drifted weights and computes the chip's output.

    Every draw (weights, per-read noise) comes from the layer's own stream of ``streams`` (keyed
    by the layer's ``name``), on the weights' device."""

    def __init__(self, profile: DeviceProfile, tables: QuantileTables, streams: ChipStreams, name: str):
        self.profile, self.tables = profile, tables
        # fp32 product: the weights change at every step, and packing int8 limbs costs more
        # than the int8 product saves (deploy packs once per drift time)
        self.conv = dataclasses.replace(Converters.from_periphery(profile.periphery), int8=False)
        self.read = read_noise(build_family(profile), profile.periphery.w_noise, profile.devices_per_weight)
        self.streams, self.name = streams, name
        self.ranges: Tensor | None = None  # static input ranges per row tile, once calibrated
        self._stream: Stream | None = None
        # a frozen layer's mapping scale, and its targets u and sampling grid (torch path)
        self.frozen_scale: Tensor | None = None
        self.frozen_lookup: tuple[Tensor, Tensor] | None = None

    def stream(self, device: torch.device) -> Stream:
        """The layer's stream on ``device`` (a new device restarts it)."""
        if self._stream is None or self._stream.device != device:
            self._stream = self.streams.stream(self.name, "train", device)
        return self._stream

    def _mapping(self, w: Tensor, frozen: bool) -> Tensor:
        """Mapping scale m, [out, 1] or []; a frozen layer's never changes and is kept."""
        if frozen and self.frozen_scale is not None:
            return self.frozen_scale
        m = mapping_scale(self.profile, w)
        if frozen:
            self.frozen_scale = m
        return m

    def _draw(self, w: Tensor, m: Tensor, k: int, frozen: bool) -> tuple[Tensor, Tensor, Tensor]:
        """U_t ~ the device at the ``k``-th time given the targets u = w / m ([out, in]), plus one
        read's weight noise, and the row sums of |u| and of the drifted |U_t| (before that read):
        in one compiled pass where it is built, else by the tables' torch draw from the layer's
        stream."""
        stream = self.stream(w.device)
        if self.tables.values.device != w.device:
            self.tables = self.tables.to(w.device)
        if epilogue.compiled_for(w) and not self.tables.weight_level:
            inv = (1.0 / m).reshape(-1).expand(w.shape[0]).contiguous()
            return epilogue.draw(w.contiguous(), inv, self.tables.values[k], -Z_MAX, Z_STEP,
                                 stream.generator(), self.read)
        lookup = self.frozen_lookup if frozen else None
        if lookup is None:
            u = w / m
            lookup = (u, self.tables.grid(u))
            if frozen:
                self.frozen_lookup = lookup
        u, grid = lookup
        drifted = self.tables.draw(grid, k, stream.normal(tuple(u.shape)))
        sums = (u.abs().sum(1), drifted.abs().sum(1))
        if self.read is not None:
            drifted = drifted.addcmul_(self.read.variance(drifted).sqrt_(), stream.normal(tuple(u.shape)))
        return drifted, *sums

    def device_weights(self, w: Tensor, k: int, frozen: bool) -> tuple[Tensor, Tensor]:
        """(U_t, out_scale): normalised weights drawn at the ``k``-th drift time, and the digital
        scale per output (mapping scale times drift compensation), [out] or []."""
        m = self._mapping(w, frozen)
        drifted, abs_u, abs_t = self._draw(w, m, k, frozen)
        compensation = self.profile.compensation
        if compensation == "none":
            return drifted, m.view(-1)
        if compensation == "global":
            alpha = abs_u.sum() / abs_t.sum().clamp_min(1e-12)
        else:  # per-column: one gain per output, the tile's column
            alpha = (abs_u / abs_t.clamp_min(1e-12)).view(-1, 1)
        return drifted, (m * alpha).view(-1)

    @torch.no_grad()
    def output(self, x: Tensor, w: Tensor, b: Tensor | None, k: int, frozen: bool) -> Tensor:
        """The chip's output for ``x`` [..., in]: ``w`` [out, in] programmed, drifted to the
        ``k``-th time and read through the periphery (deploy's MVM), plus the digital bias ``b``."""
        u_t, scale = self.device_weights(w, k, frozen)
        flat = x.reshape(-1, x.shape[-1]).float()
        if self.conv.perfect:
            y = F.linear(flat, u_t * scale.view(-1, 1) if scale.dim() else u_t * scale, b)
        else:
            if self.conv.static and self.ranges is None:
                raise ImcSimError(NOT_CALIBRATED)
            grid = row_tile_grid(flat.shape[1], self.profile.periphery)  # deploy's row tiles
            rows, row_tiles = grid.rows, grid.row_tiles
            pad = grid.padded_in - flat.shape[1]
            if pad:  # the inputs are padded in the DAC
                u_t = F.pad(u_t, (0, pad))

            def stacked(t: Tensor) -> Tensor:
                return t.view(t.shape[0], row_tiles, rows).transpose(0, 1).contiguous()

            scales = scale.expand(u_t.shape[0]).expand(row_tiles, -1)
            stack = TileStack.build(stacked(u_t), scales, self.conv, used=grid.row_sizes)
            ranges = None if self.ranges is None else self.ranges.to(flat.device)
            y = analog_mvm(flat, stack, b, self.conv, self.stream(flat.device), ranges)
        return y.view(*x.shape[:-1], -1).to(x.dtype)


def _lora_branch(module: nn.Module, x: Tensor) -> Tensor:
    """The LoRA branch's value without dropout: sum over active adapters of scaling B A x."""
    out = 0
    for name in module.active_adapters:
        out = out + module.lora_B[name](module.lora_A[name](x)) * module.scaling[name]
    return out


def _inner_product(module: nn.Module) -> nn.Module | None:
    """The frozen layer inside an adapter whose product the adapter's gradient flows through
    (GRASP's base, LoRA's base layer); None where the layer's own weights carry it."""
    if isinstance(module, GraspLayer):
        return module.base
    return getattr(module, "base_layer", None)


class DeviceAwareForward:
    """The training-time forward of one analog layer (see the module docstring).

    The chip's output replaces the value of a digital product: a plain layer's own, StochGRASP's
    product with this forward's W + mu + sigma eps, or, for GRASP and LoRA, the product of the
    frozen layer inside them, so that their gradients flow as in plain training (GRASP's through
    its input transform, LoRA's through its branch)."""

    def __init__(self, module: nn.Module, sampler: DeviceSampler, clock: list[int]):
        self.module, self.sampler, self.clock = module, sampler, clock
        self.original = module.forward
        self.inner = _inner_product(module)
        self.pending: Tensor | None = None
        if self.inner is not None:
            self.inner_original = self.inner.forward

    def patch(self) -> None:
        """Route the module's (and its inner product's) forward through this object."""
        if self.inner is not None:
            self.inner.forward = self.inner_forward
        self.module.forward = self

    def inner_forward(self, x: Tensor) -> Tensor:
        if self.pending is None:
            return self.inner_original(x)
        value, self.pending = self.pending, None
        return ReplacedValue.apply(x, weight_in_out(self.inner), value)

    def __call__(self, x: Tensor) -> Tensor:
        k = self.clock[0]
        if not self.module.training or k < 0:
            return self.original(x)
        if self.inner is None:
            w, b = effective_weight(self.module)
            frozen = not w.requires_grad
            value = self.sampler.output(x, w.detach(), b, k, frozen)
            return ReplacedValue.apply(x, w.T, value)
        with torch.no_grad():
            w, b = effective_weight(self.module)
            value = self.sampler.output(x, w, b, k, frozen=False)
            if not isinstance(self.module, GraspLayer):  # LoRA adds its branch after the base
                value = value - _lora_branch(self.module, x)
        self.pending = value
        return self.original(x)

    def restore(self) -> None:
        """Put the plain forwards back (a no-op where they already are)."""
        self.pending = None
        if vars(self.module).get("forward") is self:
            del self.module.forward
        if self.inner is not None and vars(self.inner).get("forward") == self.inner_forward:
            del self.inner.forward


class DeviceTraining:
    """Training forwards of ``model``'s analog layers (or those ``layers`` selects, see
    :func:`device_layers`) see ``profile`` at a drift time drawn per forward (log-uniform over the
    grid standing for ``drift``, from a generator seeded with ``seed``), while :attr:`enabled`; the
    other layers train digitally. Module structure and state-dict names are unchanged.

    The layers are patched on construction and restored by :meth:`detach`; use it as a context
    manager, ``with DeviceTraining(model, profile, drift) as device: ...``, so that the model is
    restored whatever happens inside (an exception included)."""

    def __init__(self, model: nn.Module, profile: DeviceProfile, drift: tuple[float, float],
                 seed: int = 0, layers: str | None = None):
        if drift[0] != drift[1] and not profile.drifts:
            raise ImcSimError(f"device {profile.name!r} has no drift; a drift range "
                              f"{format_time(drift[0])}..{format_time(drift[1])} means nothing for it")
        layers = device_layers(model, layers)
        if not layers:
            raise ImcSimError("no Linear/Conv1D layer inside transformer blocks to train device-aware")
        self.tables = QuantileTables.measure(profile, drift_grid(*drift))
        self.enabled = True
        self.model, self.periphery, self.calibrated = model, profile.periphery, False
        clock = [0]  # index of this forward's drift time; -1: the device is off
        self.names = [name for name, _ in layers]
        self.modules = [module for _, module in layers]
        streams = ChipStreams(seed)
        self.forwards = [DeviceAwareForward(module, DeviceSampler(profile, self.tables, streams, name), clock)
                         for name, module in layers]
        times = torch.Generator().manual_seed(seed)
        n = len(self.tables.times)

        def tick(*_) -> None:
            clock[0] = int(torch.randint(n, (1,), generator=times)) if self.enabled else -1

        self.hook = None
        try:
            for forward in self.forwards:
                forward.patch()
            self.hook = model.register_forward_pre_hook(tick)
        except BaseException:
            self.detach()
            raise

    @property
    def needs_ranges(self) -> bool:
        """Static input ranges that :meth:`calibrate` has not set yet."""
        return self.periphery.input_range == "static" and not self.calibrated

    def calibrate(self, batches: list[dict[str, Tensor]]) -> None:
        """Every layer's static input ranges from the digital forward over ``batches`` (see
        :mod:`imc_sim.training.static_ranges`); no drift time is drawn meanwhile."""
        enabled, self.enabled = self.enabled, False
        try:
            ranges = calibrate_inputs(self.model, self.modules, self.periphery, batches)
        finally:
            self.enabled = enabled
        for forward, r in zip(self.forwards, ranges, strict=True):
            forward.sampler.ranges = r
        self.calibrated = True

    def stored_ranges(self) -> StoredRanges | None:
        """The calibrated ranges by the layers' names in the merged model (None: none)."""
        ranges = [forward.sampler.ranges for forward in self.forwards]
        return stored_ranges(self.model, self.periphery, self.names, ranges) if self.calibrated else None

    def detach(self) -> None:
        """Restore every plain forward and remove the hook (idempotent)."""
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
        for forward in self.forwards:
            forward.restore()

    def __enter__(self) -> DeviceTraining:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.detach()
