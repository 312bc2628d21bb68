"""The periphery after a tile's product in one compiled pass (``_epilogue.c``), with torch's ops as
the fallback: output and read noise, ADC rounding and clipping, digital scales, row-tile sum.
The same library draws device-aware training's weights from quantile tables (:func:`draw`).

    out = base + clamp(round(y * y_scale + sd * z), +-bound) * row_scale[:, None] * col_factor

``z`` ~ N(0, 1) from the caller's :class:`~imc_sim.crossbar.streams.Stream`: in the compiled
pass from a counter-based generator (Philox4x32-10 and Box-Muller) keyed by a seed drawn from the
stream's generator (``torch.randint(..., generator=g)``), so the chip's seed fixes every sample,
and the samples do not depend on how rows are split over threads; in the torch path from the
stream's normals, on the tensors' device. The compiled pass draws and applies the noise about
2.7x faster than torch's generator plus separate elementwise passes (``docs/results.md``). It is
built by ``pip install`` where a C compiler is present; :data:`AVAILABLE` says whether it loaded.
It takes CPU tensors only: its wrappers refuse any other device before touching a pointer, and
:func:`apply` (like the periphery's DAC) takes the torch path for tensors elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from imc_sim.devices.family import CompiledLaw, ReadNoise
from imc_sim.native import F32, I64, INT, PTR, U64, load_library, pointer, require_cpu

if TYPE_CHECKING:
    from imc_sim.crossbar.ir_drop import DropTerms
    from imc_sim.crossbar.streams import Stream

_LIB = load_library(__file__, "_epilogue", {
    "periphery_epilogue": [PTR, F32, I64, I64, PTR, PTR, F32, F32, F32, INT, F32, PTR, PTR, PTR, PTR, INT,
                           U64, PTR, PTR, F32, F32, F32],
    "device_draw": [PTR, PTR, I64, I64, PTR, I64, I64, F32, F32, INT, F32, F32, F32, PTR, PTR, PTR, U64],
    "dac_codes": [PTR, I64, I64, I64, I64, F32, PTR, INT, INT, INT, F32, PTR, PTR, PTR],
    "dithered_squares": [PTR, I64, I64, PTR, PTR],
    "tile_normals": [PTR, I64, I64, PTR],
    "pcm_tiles": [I64, I64, I64, I64, PTR, PTR, I64, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR],
})
AVAILABLE = _LIB is not None
use_compiled = AVAILABLE  # tests switch it off to check the fallback against the compiled pass


def compiled_for(t: Tensor) -> bool:
    """Whether the compiled pass runs for tensors like ``t``: built, switched on, and on CPU."""
    return use_compiled and t.device.type == "cpu"


@dataclass(frozen=True)
class ElementStd:
    """A noise std per element, sd = sqrt(var * row[:, None] + add) * scale (``var`` [N, M] float32
    contiguous; ``row`` [N] or None: 1), computed inside the pass."""

    var: Tensor
    add: float
    scale: float
    row: Tensor | None = None

    def tensor(self) -> Tensor:
        var = self.var if self.row is None else self.var * self.row[:, None]
        return var.add(self.add).sqrt_().mul_(self.scale)


def _seed(generator: torch.Generator) -> int:
    """The compiled generator's key for one call, drawn from ``generator`` (a CPU one)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator))


def apply(y: Tensor, y_scale: float, sd: float | ElementStd, quantize: bool, bound: float,
          row_scale: Tensor | None, col_factor: Tensor, base: Tensor | None, out: Tensor,
          stream: Stream, drop: DropTerms | None = None) -> Tensor:
    """Write ``base + clamp(round((y - drop) * y_scale + sd z), +-bound) * row_scale * col_factor``
    into ``out`` and return it. ``y``, ``out``: [N, M] float32 contiguous (``out`` may be ``y``);
    ``drop``: the IR drop's terms (None: none; ``drop.alpha`` times its drop); ``sd``: a number or
    per element; ``row_scale``: [N] or None; ``col_factor``: [M]; ``base``: ``out`` itself
    (accumulate), a bias [M], or None; ``z`` from ``stream`` (one draw per call)."""
    if compiled_for(y):
        return apply_compiled(y, y_scale, sd, quantize, bound, row_scale, col_factor, base, out,
                              stream.generator(), drop)
    if drop is not None:
        y = y.sub_(drop.drop(), alpha=drop.alpha)
    if isinstance(sd, ElementStd) or sd > 0:
        std = sd.tensor() if isinstance(sd, ElementStd) else sd
        v = stream.normal(tuple(y.shape)).mul_(std).add_(y, alpha=y_scale)
    else:
        v = y * y_scale
    if quantize:
        v.round_()
    v.clamp_(-bound, bound)
    if row_scale is not None:
        v.mul_(row_scale.unsqueeze(1))
    v.mul_(col_factor)
    if base is None:
        return out.copy_(v)
    return out.add_(v) if base is out else torch.add(v, base, out=out)


def apply_compiled(y: Tensor, y_scale: float, sd: float | ElementStd, quantize: bool, bound: float,
                   row_scale: Tensor | None, col_factor: Tensor, base: Tensor | None, out: Tensor,
                   generator: torch.Generator, drop: DropTerms | None = None) -> Tensor:
    """:func:`apply` in the compiled pass (CPU tensors only), its key drawn from ``generator``."""
    elem = sd if isinstance(sd, ElementStd) else None
    var, var_row = (None, None) if elem is None else (elem.var, elem.row)
    drop_w, drop_a = (None, None) if drop is None else (drop.weighted, drop.current)
    require_cpu(y, var, var_row, row_scale, col_factor, base, out, drop_w, drop_a)
    sd_scalar = 0.0 if elem is not None else float(sd)
    var_add, sd_scale = (0.0, 0.0) if elem is None else (elem.add, elem.scale)
    seed = _seed(generator)
    accumulate = base is out
    bias = None if accumulate else base
    n, m = y.shape
    _LIB.periphery_epilogue(pointer(y), y_scale, n, m, pointer(var), pointer(var_row), var_add, sd_scale,
                            sd_scalar, int(quantize), bound, pointer(row_scale), pointer(col_factor),
                            pointer(bias), pointer(out), int(accumulate), seed, pointer(drop_w),
                            pointer(drop_a), *((0.0, 0.0, 0.0) if drop is None else
                                               (drop.model.per_code, drop.model.scale, drop.alpha)))
    return out


def draw(x: Tensor, row_inv: Tensor | None, table: Tensor, z_first: float, z_step: float,
         generator: torch.Generator, read: ReadNoise | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Compiled only (check :func:`compiled_for`): the inverse-CDF draw ``w = Q(u, z)`` for the
    normalised targets ``u = x * row_inv[:, None]`` (``x`` [N, M] float32 contiguous; ``row_inv``
    [N] or None for u = x), ``table`` [G, L] the quantiles at G evenly spaced targets on [-1, 1]
    (rows) and L levels Phi(z_first + l z_step) (columns), interpolated linearly in u (clamped to
    [-1, 1]) and in z (clamped to the columns), z ~ N(0, 1) keyed by a seed drawn
    from ``generator``; returns ``w`` and the row sums of |u| and |w| ([N] each). With ``read``,
    one read's weight noise is then added to ``w``, of variance ``read.variance(w)`` (the row sums
    stay those of the drifted state). The torch path computes the same interpolation
    (:meth:`imc_sim.devices.quantiles.QuantileTables.draw`)."""
    require_cpu(x, row_inv, table)
    n, m = x.shape
    w, abs_u, abs_w = torch.empty_like(x), x.new_empty(n), x.new_empty(n)
    table = table.float().contiguous()
    grid, levels = table.shape
    seed = _seed(generator)
    law = read or ReadNoise()
    _LIB.device_draw(pointer(x), pointer(row_inv), n, m, pointer(table), grid, levels, z_first, 1.0 / z_step,
                     int(read is not None), law.c0, law.c1, law.c2, pointer(w), pointer(abs_u),
                     pointer(abs_w), seed)
    return w, abs_u, abs_w


def dac_codes(x: Tensor, row_tiles: int, inv_d_in: float, managed: bool, quantize: bool,
              bound: float | None, as_uint8: bool, tile_factor: Tensor | None = None,
              rows: int | None = None) -> tuple[Tensor, Tensor | None]:
    """Compiled only (check :func:`compiled_for`): DAC codes of ``x`` [N, width] (float32
    contiguous) on ``row_tiles`` row tiles of ``rows`` inputs (None: width / row_tiles), the last
    ones padded with zero inputs where width < row_tiles * rows: ``x * f / s`` with f =
    ``inv_d_in``, or ``tile_factor`` [row_tiles] (float32) per row tile where given, s the max |x|
    of each row tile where ``managed``, rounded where ``quantize``, clamped to +-``bound`` (None:
    no clamp). Returns the codes, as float [N, row_tiles, rows] or as uint8 code + 128
    [row_tiles, N, rows], and s [N, row_tiles, 1] (None unless ``managed``)."""
    require_cpu(x, tile_factor)
    if tile_factor is not None and tile_factor.shape != (row_tiles,):
        raise ValueError(f"tile_factor has shape {tuple(tile_factor.shape)}, not ({row_tiles},)")
    n, width = x.shape
    rows = width // row_tiles if rows is None else rows
    if width > row_tiles * rows:
        raise ValueError(f"{width} inputs do not fit {row_tiles} row tiles of {rows}")
    codes = (x.new_empty(row_tiles, n, rows, dtype=torch.uint8) if as_uint8
             else x.new_empty(n, row_tiles, rows))
    scale = x.new_empty(n, row_tiles, 1) if managed else None
    codes_f, codes_u8 = (None, codes) if as_uint8 else (codes, None)
    factor = None if tile_factor is None else tile_factor.float().contiguous()
    _LIB.dac_codes(pointer(x), n, width, row_tiles, rows, inv_d_in, pointer(factor), int(managed),
                   int(quantize), int(bound is not None), 0.0 if bound is None else bound,
                   pointer(codes_f), pointer(codes_u8), pointer(scale))
    return codes, scale


def dithered_squares(codes: Tensor) -> tuple[Tensor, Tensor]:
    """Compiled only (check :func:`compiled_for`): the squares of DAC codes given as uint8 c + 128
    ([N, cols], contiguous) as one uint8 each in steps of each row's own s = max c^2 / 255, with
    an unbiased dither (``_epilogue.c``); returns them and s [N] (float32)."""
    require_cpu(codes)
    n, cols = codes.shape
    q, step = torch.empty_like(codes), torch.empty(n, device=codes.device)
    _LIB.dithered_squares(pointer(codes), n, cols, pointer(q), pointer(step))
    return q, step


def tile_normals(out: Tensor, seeds: Tensor) -> Tensor:
    """Compiled only (check :func:`compiled_for`): fill ``out`` [tiles, per_tile] (float32,
    contiguous) with tile t's standard normals under key ``seeds[t]`` (int64 [tiles]), laid out as
    :mod:`imc_sim.crossbar.philox` describes."""
    require_cpu(out, seeds)
    tiles, per_tile = out.shape
    if seeds.shape != (tiles,) or seeds.dtype != torch.int64 or out.dtype != torch.float32:
        raise ValueError(f"tile_normals takes float32 out [tiles, n] and int64 seeds [tiles], got "
                         f"{out.dtype} {tuple(out.shape)} and {seeds.dtype} {tuple(seeds.shape)}")
    seeds = seeds.contiguous()
    _LIB.tile_normals(pointer(out), tiles, per_tile, pointer(seeds))
    return out


def pcm_tiles(law: CompiledLaw, devices: int, u_target: Tensor, ratio_target: Tensor, seeds_program: Tensor,
              ratio_programmed: Tensor | None = None, seeds_coefficients: Tensor | None = None,
              seeds_read: Tensor | None = None, stuck: Tensor | None = None,
              live: Tensor | None = None) -> Tensor:
    """Compiled only (check :func:`compiled_for`): the weights [tiles, cols, rows] that the PCM
    devices (``devices`` pairs per weight) of the tiles hold after programming the targets
    ``u_target`` (pair ratios ``ratio_target`` [tiles], normals under ``seeds_program``) or, given
    ``ratio_programmed`` (the programmed weights' pair ratio per tile), after drift: the programmed
    weights programmed again chunk by chunk, re-converted with that ratio, nu drawn from the
    targets under ``seeds_coefficients``, the read noise under ``seeds_read`` (None: none). Stuck
    devices ``stuck`` [tiles, (devices,) 2, cols, rows] (int8: 0, 1 low, 2 high) are pinned,
    padding and dead columns (``live`` [tiles, cols, rows], 0 there, else 1) zeroed:
    ``CrossbarLinear.program`` and ``drift``'s torch path in one pass, to float rounding (the same
    device normals; programming bit for bit)."""
    tiles, cols, rows = u_target.shape
    require_cpu(u_target, ratio_target, seeds_program, ratio_programmed, seeds_coefficients, seeds_read,
                stuck, live)
    if (ratio_programmed is None) != (seeds_coefficients is None):
        raise ValueError("drift needs both ratio_programmed and seeds_coefficients, programming neither")
    per_tile = {"ratio_target": ratio_target, "seeds_program": seeds_program,
                "ratio_programmed": ratio_programmed, "seeds_coefficients": seeds_coefficients,
                "seeds_read": seeds_read}
    sizes = {**{k: (t, tiles) for k, t in per_tile.items()},
             "stuck": (stuck, tiles * devices * 2 * cols * rows), "live": (live, tiles * cols * rows)}
    for what, (t, size) in sizes.items():  # the pass reads these sizes blindly: refuse anything else
        if (t is None and what in ("ratio_target", "seeds_program")) or (t is not None and t.numel() != size):
            raise ValueError(f"pcm_tiles: {what} must hold {size} values for {tiles} tiles of {cols}x{rows}, "
                             f"got {None if t is None else tuple(t.shape)}")
    device = u_target.device  # the CPU: require_cpu above
    params = torch.tensor(law.params, dtype=torch.float32, device=device)
    table = None if law.table is None else torch.tensor(law.table, dtype=torch.float32, device=device)

    def flat(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        return None if t is None else t.to(dtype).contiguous()

    # converted copies held in names until the call returns (a pointer does not keep its tensor alive)
    held = [flat(u_target, torch.float32), flat(ratio_target, torch.float32),
            flat(seeds_program, torch.int64), flat(ratio_programmed, torch.float32),
            flat(seeds_coefficients, torch.int64),
            flat(seeds_read, torch.int64), flat(stuck, torch.int8), flat(live, torch.float32)]
    out = torch.empty(tiles, cols, rows, device=device)
    _LIB.pcm_tiles(tiles, devices, cols, rows, pointer(params), pointer(table), law.points,
                   *(pointer(t) for t in held), pointer(out))
    return out
