"""A Linear or GPT-2 Conv1D layer programmed onto a grid of crossbar tiles, all tiles batched.

The layer's weight W [out, in] is cut into tiles of ``tile_rows`` inputs x ``tile_cols`` outputs
(:class:`~imc_sim.crossbar.grid.TileGrid`); every per-tile quantity is one stacked tensor held as a
registered buffer, so ``.to(device)`` moves the whole chip. Per tile, as aihwkit 1.1.0's
``TorchInferenceTile`` does it (``tests/test_crossbar.py`` holds the two against each other):

- mapping (``weight_scaling_omega`` = 1): scale m = max |w| per column within the tile's rows
  (per-column), of the tile (per-tile) or 1 (none); targets u = w / m;
- programming: u -> device pair (g+, g-) (:mod:`~imc_sim.crossbar.conductance`), each device
  programmed and given its drift coefficients by the device family; u_p = back-conversion;
  with n = ``devices_per_weight`` > 1, n pairs per weight, each programmed (and drifted) apart,
  their conductances summed and read back with n times the ratio (full scale: n g_max), so
  u_p = mean of the n pairs' weights; their per-read variance is the family's / n;
- faults (:mod:`~imc_sim.crossbar.faults`, drawn at programming): stuck devices pinned to g_min /
  g_max after programming and after every drift, dead columns masked to 0 like the padding;
- drift to t: aihwkit RE-CONVERTS the programmed u_p into a new pair with a new ratio (max |u_p|
  of the tile), drifts those conductances with the coefficients drawn at programming, and converts
  back with the new ratio; reproduced here as a quirk of aihwkit 1.1.0;
- drift compensation (:mod:`~imc_sim.crossbar.compensation`): output scale = m * alpha;
- IR drop (:mod:`~imc_sim.crossbar.ir_drop`), where the profile has it: each tile's product less
  the drop its wires cause, on the current weights and the inputs of each MVM (and read-out).

Weight-level families (gaussian, ideal) act on u directly, without a pair. Where a family has a
compiled law (PCM) and the tiles are on a CPU with the compiled pass built, programming and drift
of every tile run in that one pass (:func:`~imc_sim.crossbar.epilogue.pcm_tiles`: the same device
normals, the same weights to float rounding); elsewhere in torch, by groups of tiles. The forward
runs the fused periphery (:mod:`~imc_sim.crossbar.periphery`) on the stacked weights, in float32
whatever the model's dtype; the bias stays digital. Before programming the tiles hold the targets
exactly (the periphery alone). With static input ranges (:mod:`~imc_sim.crossbar.input_ranges`) the
layer is calibrated once (:meth:`begin_calibration`, forwards, :meth:`end_calibration`) and keeps
one range per row tile in a buffer. Randomness comes from the chip's streams
(:mod:`~imc_sim.crossbar.streams`), per tile for programming (``program``), drift coefficients
(``drift-coefficients``), faults (``faults``), the drift's read noise (``drift-read`` at t) and the
compensation read-out (``compensation``, per row tile), and per layer for the forward's per-read
noise (``read`` at the drift time, restarted at each drift).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imc_sim.crossbar import compensation, epilogue, faults
from imc_sim.crossbar.conductance import from_pair, pair_ratio, to_pair
from imc_sim.crossbar.grid import TileGrid, mapping_scales
from imc_sim.crossbar.input_ranges import Calibration
from imc_sim.crossbar.ir_drop import IrDrop
from imc_sim.crossbar.periphery import Converters, TileStack, analog_mvm, read_noise
from imc_sim.crossbar.streams import ChipStreams, Stream
from imc_sim.devices.family import CompiledLaw, DeviceFamily
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.peft.targets import in_out_features, weight_in_out
from imc_sim.units import format_time

UNPROGRAMMED = ChipStreams(0)  # the read noise of a layer that was never programmed
CPU_GROUP = 1 << 18  # weights per group of tiles computed together on a CPU (cache-sized temporaries)


class CrossbarLinear(nn.Module):
    """y = analog(x W^T) + b on a grid of tiles of ``profile`` (inference only).

    :meth:`program` once per chip, :meth:`drift` to each read-out time; both draw from the chip's
    :class:`~imc_sim.crossbar.streams.ChipStreams` under this layer's ``name``."""

    def __init__(self, layer: nn.Module, profile: DeviceProfile, family: DeviceFamily):
        super().__init__()
        in_features, out_features = in_out_features(layer)
        periphery = profile.periphery
        self.grid = TileGrid.of(in_features, out_features, periphery.tile_rows, periphery.tile_cols,
                                periphery.tile_split)
        self.devices, self.faults = profile.devices_per_weight, profile.faults
        self.family, self.conv = family, Converters.from_periphery(periphery)
        self.read_law = read_noise(family, periphery.w_noise, self.devices)  # per-read variance (or None)
        self.compensation = profile.compensation
        self.ir_drop = IrDrop.of(profile, self.grid.rows, self.conv.d_in)
        weight = weight_in_out(layer).detach().T.float()  # [out, in]
        device = weight.device
        bias = layer.bias.detach().clone().float() if layer.bias is not None else None
        tiles = self.grid.cut(weight)
        scales = mapping_scales(tiles, periphery.weight_scaling)
        self.register_buffer("bias", bias)
        self.register_buffer("target", tiles / scales[..., None])  # u per tile
        self.register_buffer("mapping", self.grid.column_values(scales))  # m, [row_tiles, out]
        self.register_buffer("stuck", None)  # faults.OK / LOW / HIGH per device (None: no stuck)
        self.register_buffer("live_rows", None)  # bool [row_tiles, col_tiles, 1, rows]: False on padding
        self.register_buffer("programmed_ratio", None)  # pair ratio of the programmed weights per tile
        self.register_buffer("live_cols", None)  # bool [row_tiles, col_tiles, cols, 1]: padding, dead columns
        self._chip: tuple[ChipStreams, str] | None = None  # the streams and name it was programmed with
        self.register_buffer("baseline", None)  # compensation read-out after programming
        self.register_buffer("weights", None)  # current u, stacked [row_tiles, out, rows]
        self.register_buffer("scales", None)  # digital output scales [row_tiles, out]
        self.register_buffer("dense", None)  # [out, in] where the periphery is exact
        self.register_buffer("input_ranges", None)  # static DAC range per row tile [row_tiles]
        self.input_percentile = periphery.input_percentile
        self._calibration: Calibration | None = None
        self._stack: TileStack | None = None
        self.read_stream = UNPROGRAMMED.stream("", "read", device)
        self._set_state(self.target, self.mapping)

    @property
    def in_features(self) -> int:
        return self.grid.in_features

    @property
    def out_features(self) -> int:
        return self.grid.out_features

    @property
    def rows(self) -> int:
        return self.grid.rows

    @property
    def row_tiles(self) -> int:
        return self.grid.row_tiles

    @property
    def n_tiles(self) -> int:
        return self.grid.n_tiles

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - nn.Module's signature
        """``.to()``: buffers move, the packed product is rebuilt; the tiles stay float32."""
        super()._apply(fn, recurse)
        for name, buffer in self._buffers.items():
            if buffer is not None and buffer.is_floating_point():
                self._buffers[name] = buffer.float()
        self._stack = None
        self.read_stream = Stream(self.read_stream.keys, self.target.device)
        return self

    def __getstate__(self) -> dict:
        """For ``copy.deepcopy`` and ``torch.save``: without the packed product (rebuilt when used)."""
        return {**self.__dict__, "_stack": None}

    def _groups(self) -> list[tuple[int, int]]:
        """(first tile, count) of the tiles programmed and drifted together: all, or on a CPU groups of
        :data:`CPU_GROUP` weights, temporaries in cache (laws act per device or tile: no number changes)."""
        n, size = self.grid.n_tiles, self.grid.rows * self.grid.cols
        per = n if self.target.device.type != "cpu" else max(1, CPU_GROUP // size)
        return [(first, min(per, n - first)) for first in range(0, n, per)]

    def _by_groups(self, compute: Callable[[int, int], Tensor]) -> Tensor:
        """``compute(first, count)`` for every group, joined along the tile axis."""
        parts = [compute(first, count) for first, count in self._groups()]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _tiles(self, t: Tensor, first: int, count: int) -> Tensor:
        """Tiles first .. first + count - 1 of a per-tile tensor [row_tiles, col_tiles, ...]."""
        return t.flatten(0, 1).narrow(0, first, count)

    def _normals(self, streams: ChipStreams, name: str, purpose: str, pair: bool, first: int,
                 count: int, time: float | str | None = None) -> Tensor:
        """Standard normals for every device of tiles first .. first + count - 1, tile i's from
        its own stream: [count, (devices,) (2,) cols, rows]."""
        shape = self._device_shape(pair)
        return streams.tile_normals(name, purpose, range(first, first + count), shape,
                                    self.target.device, time)

    def _device_shape(self, pair: bool) -> tuple[int, ...]:
        """One tile's devices: [(devices,) 2, cols, rows] for a pair family, else [cols, rows]."""
        if not pair:
            return self.grid.tile_shape
        return (2, *self.grid.tile_shape) if self.devices == 1 else (self.devices, 2, *self.grid.tile_shape)

    def _target_devices(self, first: int, count: int) -> tuple[Tensor, Tensor | None]:
        """Tiles first .. first + count - 1's target conductances (:meth:`_to_devices`; a weight-level
        family: the normalised targets) and their pair ratio (or None)."""
        u = self._tiles(self.target, first, count)
        if self.family.weight_level:
            return u, None
        ratio = pair_ratio(u, self.family.g_max, self.family.g_min)
        return self._to_devices(u, ratio), ratio

    def _to_devices(self, u: Tensor, ratio: Tensor) -> Tensor:
        """Target conductances of the devices of weights ``u``: [count, 2, cols, rows], or with
        ``devices`` pairs per weight [count, 1, 2, cols, rows], one pair that the device laws
        broadcast against their per-device normals (the pairs of a weight share their target, so
        a law's conductance-dependent parameters are computed once per pair, not per device)."""
        g = to_pair(u, ratio, self.family.g_max, self.family.g_min)
        return g if self.devices == 1 else g.unsqueeze(1)

    def _from_devices(self, g: Tensor, ratio: Tensor, stuck: Tensor | None) -> Tensor:
        """Weights read back from the devices' conductances ``g`` (stuck devices pinned first)."""
        g = faults.pin(g, stuck, self.family.g_min, self.family.g_max)
        return from_pair(g if self.devices == 1 else g.mean(1), ratio, self.family.g_min)

    def _compiled_law(self, t_seconds: float | None) -> CompiledLaw | None:
        """The family's law for the compiled device pass, where it runs for these tiles (None: the
        torch path, by groups of tiles)."""
        if self.family.weight_level or not epilogue.compiled_for(self.target):
            return None
        return self.family.compiled_law(t_seconds)

    def _compiled_devices(self, law: CompiledLaw, streams: ChipStreams, name: str,
                          t_seconds: float | None) -> Tensor:
        """Every tile's weights after programming (``t_seconds`` None) or drift to ``t_seconds`` in the
        compiled pass (the torch path's normals; drift reprograms chunk by chunk, ``programmed_ratio``)."""
        g, family = self.grid, self.family
        tiles = range(g.n_tiles)
        target = self.target.flatten(0, 1)
        ratio = pair_ratio(target, family.g_max, family.g_min).view(-1)
        stuck = None if self.stuck is None else self.stuck.flatten(0, 1)
        live = self.live.flatten(0, 1)
        def seeds(purpose: str, time: float | None = None) -> Tensor:
            return torch.tensor(streams.tile_seeds(name, purpose, tiles, time), device=target.device)

        if t_seconds is None:
            return epilogue.pcm_tiles(law, self.devices, target, ratio, seeds("program"), stuck=stuck,
                                      live=live)
        read = seeds("drift-read", float(t_seconds)) if family.drift_noise else None
        return epilogue.pcm_tiles(law, self.devices, target, ratio, seeds("program"), self.programmed_ratio,
                                  seeds("drift-coefficients"), read, stuck, live)

    def _draw_faults(self, streams: ChipStreams, name: str) -> None:
        """The chip's stuck devices and dead columns (none drawn where their fractions are 0)."""
        g, device = self.grid, self.target.device
        tiles = range(g.n_tiles)
        self.stuck = None
        rows, cols = g.live_rows(device), g.live_cols(device)
        if self.faults.stuck_low > 0 or self.faults.stuck_high > 0:
            stuck = faults.stuck_devices(self.faults, streams, name, tiles, self._device_shape(True), device)
            self.stuck = stuck.view(g.row_tiles, g.col_tiles, *stuck.shape[1:])
        if self.faults.dead_columns > 0:
            dead = faults.live_columns(self.faults, streams, name, tiles, g.cols, device)
            cols = cols & (dead.view(g.row_tiles, g.col_tiles, g.cols, 1) > 0)
        self.live_rows, self.live_cols = rows, cols

    @property
    def live(self) -> Tensor | None:
        """bool [row_tiles, col_tiles, cols, rows]: True on working devices, False on padding and
        dead columns (None before programming); made from its row and column factors when asked."""
        return None if self.live_rows is None else self.live_rows & self.live_cols

    @property
    def programmed(self) -> Tensor | None:
        """u_p per tile: the weights just after programming (None before programming), programmed
        again from the chip's streams when asked rather than kept (a weight-sized tensor less in
        memory; the same numbers, since every draw comes from the chip's seed)."""
        return None if self._chip is None else self._programmed_weights(*self._chip)

    @property
    def stack(self) -> TileStack:
        """The forward's tiles (int8 limbs packed on the CPU), rebuilt after a change."""
        if self._stack is None:
            self._stack = TileStack.build(self.weights, self.scales, self.conv, self.read_law,
                                          self.ir_drop, self.grid.row_sizes)
        return self._stack

    def read_variance(self) -> Tensor | None:
        """The per-read variance of every stacked weight (None: no read noise), from the current weights."""
        return None if self.read_law is None else self.read_law.variance(self.weights)

    def _set_state(self, u: Tensor, scales: Tensor) -> None:
        """The tiles now hold weights ``u`` (per tile) with digital output scales [row_tiles, out]."""
        self.weights = self.grid.stack(u)
        self._set_scales(scales)

    def _set_scales(self, scales: Tensor) -> None:
        self.scales = scales
        self._stack = None
        self.dense = None
        if self.conv.perfect and self.read_law is None and self.ir_drop is None:  # one exact GEMM
            self.dense = self.weight_in_layer_units().contiguous()

    def weight_in_layer_units(self) -> Tensor:
        """The weight the tiles now hold, [out, in] in the layer's units: u x m x alpha (programmed,
        drifted, compensated). What each MVM adds (per-read and output noise, converters, IR drop)
        is not in it."""
        dense = (self.weights * self.scales.unsqueeze(-1)).permute(1, 0, 2).reshape(self.out_features, -1)
        return dense[:, : self.in_features]

    def _read_out(self, streams: ChipStreams, name: str, time: float | str) -> Tensor | None:
        """The compensation read-out of the current weights, [row_tiles, out] (None: none)."""
        if self.compensation == "none":
            return None
        outputs = compensation.read_tiles(self.weights, self.read_variance(), self.conv, streams, name, time,
                                          self.ir_drop)
        return compensation.readout(outputs, self.grid, self.compensation == "per-column")

    @torch.no_grad()
    def program(self, streams: ChipStreams, name: str) -> None:
        """Program every tile once (programming noise) and read the compensation baseline; the
        tiles then hold the programmed weights (t = 0, alpha = 1). The drift coefficients, drawn
        at programming too, are not kept: :meth:`drift` draws them again from their own stream
        (the same numbers; a weight-sized tensor per device less in memory), as it programs the
        weights again (:attr:`programmed`)."""
        self._draw_faults(streams, name)
        self._chip = (streams, name)
        u_p, family = self._programmed_weights(streams, name), self.family
        if not family.weight_level:
            self.programmed_ratio = pair_ratio(u_p.flatten(0, 1), family.g_max, family.g_min).view(-1)
        self._set_state(u_p, self.mapping)
        self.baseline = self._read_out(streams, name, "baseline")
        self.read_stream = streams.stream(name, "read", self.target.device, time="programmed")

    @torch.no_grad()
    def _programmed_weights(self, streams: ChipStreams, name: str) -> Tensor:
        """u_p per tile: the targets programmed with the chip's programming normals, stuck devices
        and dead columns applied (the faults drawn by :meth:`program`)."""
        family = self.family
        pair = not family.weight_level

        def program_tiles(first: int, count: int) -> Tensor:
            target, ratio = self._target_devices(first, count)
            prog = family.program(target, self._normals(streams, name, "program", pair, first, count))
            if pair:
                stuck = None if self.stuck is None else self._tiles(self.stuck, first, count)
                prog = self._from_devices(prog, ratio, stuck)
            return prog * self._tiles(self.live, first, count)  # padding, dead columns: no device

        law = self._compiled_law(None)
        if law is not None:
            return self._compiled_devices(law, streams, name, None).view_as(self.target)
        return self._by_groups(program_tiles).view_as(self.target)

    @torch.no_grad()
    def drift(self, t_seconds: float, streams: ChipStreams, name: str) -> None:
        """The programmed state ``t_seconds`` after programming (drift, accumulated read noise),
        then the compensation gain; the forward's read noise restarts from the stream of t."""
        if self._chip is None:
            raise RuntimeError("drift() before program(): program the layer first")
        family = self.family
        times = family.allowed_times
        if times is not None and t_seconds not in times:
            allowed = ", ".join(format_time(t) for t in times)
            raise ImcSimError(f"this device is characterised at {allowed} only, not at "
                              f"{format_time(t_seconds)}")
        pair = not family.weight_level

        def drift_tiles(first: int, count: int) -> Tensor:
            u = self._tiles(u_p, first, count)
            target = self._target_devices(first, count)[0]  # the drift coefficients' draw, again
            coeffs = family.drift_coefficients(
                target, self._normals(streams, name, "drift-coefficients", pair, first, count))
            z = (self._normals(streams, name, "drift-read", pair, first, count, t_seconds)
                 if family.drift_noise else None)
            if pair:  # aihwkit 1.1.0 re-converts u_p with a new ratio (see the module docstring)
                ratio = pair_ratio(u, family.g_max, family.g_min)
                g_t = family.drift(self._to_devices(u, ratio), coeffs, t_seconds, z)
                stuck = None if self.stuck is None else self._tiles(self.stuck, first, count)
                u_t = self._from_devices(g_t, ratio, stuck)
            else:
                u_t = family.drift(u, coeffs, t_seconds, z)
            return u_t * self._tiles(self.live, first, count)

        law = self._compiled_law(t_seconds) if family.drifts else None
        if law is not None:
            u_t = self._compiled_devices(law, streams, name, t_seconds).view_as(self.target)
        else:
            u_p = self.programmed
            u_t = self._by_groups(drift_tiles).view_as(u_p) if family.drifts else u_p
        self._set_state(u_t, self.mapping)
        current = self._read_out(streams, name, float(t_seconds))
        if current is not None:
            self._set_scales(self.mapping * (self.baseline / current))
        self.read_stream = streams.stream(name, "read", self.target.device, time=t_seconds)

    @property
    def static_ranges(self) -> bool:
        """Whether the profile asks for static input ranges (calibrated once)."""
        return self.conv.static

    def begin_calibration(self) -> None:
        """Collect input ranges from the following forwards, which compute the digital layer."""
        self._calibration = Calibration(self.grid.rows, self.input_percentile)

    def end_calibration(self, keep: bool = True) -> None:
        """Store the collected ranges (``keep``; a one-line error if no forward ran since the
        beginning), or drop them."""
        calibration, self._calibration = self._calibration, None
        if calibration is None:
            raise RuntimeError("end_calibration() without begin_calibration()")
        if keep:
            self.input_ranges = calibration.ranges()

    def _digital(self, x: Tensor) -> Tensor:
        """x W^T + b with the layer's target weights (the digital layer)."""
        weight = (self.grid.stack(self.target) * self.mapping.unsqueeze(-1)).permute(1, 0, 2)
        return F.linear(x, weight.reshape(self.out_features, -1)[:, : self.in_features], self.bias)

    def forward(self, x: Tensor) -> Tensor:
        """The tiles' outputs for ``x`` [..., in], computed in float32, returned in ``x``'s dtype."""
        dtype, x = x.dtype, x.float()
        if self._calibration is not None:
            self._calibration.add(x.reshape(-1, self.in_features))
            return self._digital(x).to(dtype)
        if self.dense is not None:
            return F.linear(x, self.dense, self.bias).to(dtype)
        flat = x.reshape(-1, self.in_features)
        y = analog_mvm(flat, self.stack, self.bias, self.conv, self.read_stream, self.input_ranges)
        return y.view(*x.shape[:-1], self.out_features).to(dtype)

    def extra_repr(self) -> str:
        g = self.grid
        return (f"in={self.in_features}, out={self.out_features}, tiles={g.row_tiles}x"
                f"{g.col_tiles} of {g.rows}x{g.cols}")
