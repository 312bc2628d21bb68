"""IR drop along a tile's input wires: aihwkit 1.1.0's steady-state model (rpucuda ``applyIrDrop``).

The wire between neighbouring cells has a resistance R (``periphery.wire_resistance``, ohm); the
current a column draws lowers the voltage its cells see, so each output loses part of its product.
For a tile of n rows (inputs), normalised inputs x (after noise management and the DAC) and
normalised weights u (|u| <= 1 at the full-scale conductance g_full = ``devices_per_weight``
x g_max), output i reads

    y_i = sum_j u_ij x_j  -  s c(a_i) sum_j u_ij x_j (1 - (1 - j/n)^2)
    a_i = n R g_full sum_j |u_ij| |x_j|          (dimensionless; R in ohm, g_full in siemens)
    c(a) = a (0.5 - 0.2 a + 0.05 a^2)

with s = ``periphery.ir_drop`` (0: off). aihwkit states the same with ``ir_drop`` = s and
``ir_drop_g_ratio`` = 1 / (R g_full), the wire conductance over the device's: a_i = n / ratio
sum_j |u_ij| |x_j|. c grows monotonically with a, and a with the tile's rows (n times a sum over
n inputs) and with the conductance, so the drop grows with both. The position weight
1 - (1 - j/n)^2 rises from 0 at the first input to about 1 at the last. aihwkit applies it after
the product and before the weight read noise, output noise and ADC; here too. The pair's g_min
is left out of the current, as aihwkit leaves it out.

In this engine the inputs are DAC codes c = x / d_in, so a_i = (n R g_full d_in) sum_j |u_ij| |c_j|
and the drop is in code-weight units, like the product it corrects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from imc_sim.crossbar.int8_product import Int8Weights
from imc_sim.devices.profile import DeviceProfile

SIEMENS_PER_MICROSIEMENS = 1e-6


def g_ratio(profile: DeviceProfile) -> float:
    """aihwkit's ``ir_drop_g_ratio`` of ``profile``: 1 / (R g_full), dimensionless (inf: no wire
    resistance)."""
    p = profile.periphery
    g_full = profile.devices_per_weight * profile.conductance["g_max"] * SIEMENS_PER_MICROSIEMENS
    return math.inf if p.wire_resistance == 0 else 1.0 / (p.wire_resistance * g_full)


@dataclass(frozen=True)
class IrDrop:
    """The IR drop of tiles of ``rows`` inputs, in DAC-code units (see the module docstring)."""

    scale: float  # s, aihwkit's ir_drop
    per_code: float  # a_i per unit of sum_j |u_ij| |c_j|: n R g_full d_in
    rows: int  # n

    @classmethod
    def of(cls, profile: DeviceProfile, rows: int, d_in: float) -> IrDrop | None:
        """The model for ``profile``'s tiles of ``rows`` inputs and DAC step ``d_in`` (None: off)."""
        if not profile.periphery.ir_drop_on:
            return None
        return cls(profile.periphery.ir_drop, rows * d_in / g_ratio(profile), rows)

    def position(self, device: torch.device) -> Tensor:
        """The position weight 1 - (1 - j/n)^2 of each input j: [rows]."""
        p = 1.0 - torch.arange(self.rows, device=device, dtype=torch.float32) / self.rows
        return 1.0 - p * p

    def factor(self, current: Tensor) -> Tensor:
        """s c(a), a = ``per_code`` x ``current`` (sum_j |u_ij| |c_j|), in place."""
        a = current.mul_(self.per_code)
        return a.mul(0.05).sub_(0.2).mul_(a).add_(0.5).mul_(a).mul_(self.scale)

    def one_hot_drop(self, y: Tensor, position: Tensor) -> Tensor:
        """The drop for one-hot inputs, input k alone with code c_k: ``y`` [rows, out] = c_k u_ik,
        so a_ik = per_code |y_ki| and the drop is s c(a_ik) y_ki pos_k (no GEMM)."""
        return self.factor(y.abs()).mul_(y).mul_(position[:, None])


@dataclass(frozen=True)
class IrDropTiles:
    """A layer's IR drop ready for the forward, on the weights' device: the model, the stacked
    weights [row_tiles, out, rows] times the position weights (``weighted``) and their |u|
    (``magnitudes``), as int8 limbs where the product runs in int8 (``packed``), else as floats.
    Folding the position into the weights leaves the codes integer, so both products of the
    drop run like the tile's own; in int8 on the high limb alone (the weights to 1/254 of a
    column's largest, 1/126 where the CPU's int8 product needs 7-bit limbs: the drop is a small
    correction of the product, and its error a far smaller one)."""

    model: IrDrop
    weighted: Tensor | tuple[Int8Weights, ...]
    magnitudes: Tensor | tuple[Int8Weights, ...]

    @classmethod
    def build(cls, model: IrDrop, weights: Tensor, used: tuple[int, ...] | None) -> IrDropTiles:
        """The drop's weights of the stack ``weights``; ``used``: packed for the int8 product, cut
        to the inputs each row tile really has (the padding rows' codes are zero and add nothing
        to either product; the positions stay those of the full tile), None: as floats."""
        weighted, magnitudes = weights * model.position(weights.device), weights.abs()
        if used is None:
            return cls(model, weighted, magnitudes)

        def pack(t: Tensor) -> tuple[Int8Weights, ...]:
            return tuple(Int8Weights.pack(w[:, :n], low_limb=False) for w, n in zip(t, used, strict=True))
        return cls(model, pack(weighted), pack(magnitudes))

    def terms(self, codes: Tensor, r: int, alpha: float) -> DropTerms:
        """Row tile ``r``'s drop for the codes of the inputs it has, [N, used] (uint8, code + 128,
        where packed; else signed floats), as its two products, to subtract ``alpha`` times from
        the tile's."""
        if isinstance(self.weighted, tuple):
            magnitude = torch.maximum(codes, codes.neg())  # |c| + 128: neg is 256 - (c + 128)
            return DropTerms(self.model, self.weighted[r].product(codes),
                             self.magnitudes[r].product(magnitude), alpha)
        used = codes.shape[1]
        return DropTerms(self.model, torch.mm(codes, self.weighted[r, :, :used].T),
                         torch.mm(codes.abs(), self.magnitudes[r, :, :used].T), alpha)


@dataclass(frozen=True)
class DropTerms:
    """One row tile's IR drop as its products, [N, out] each: ``weighted`` = sum_j u_ij pos_j c_j and
    ``current`` = sum_j |u_ij| |c_j|; the drop, ``weighted`` s c(a), a = ``per_code`` x ``current``,
    is subtracted ``alpha`` times from the tile's product (in the periphery's pass where it is
    compiled, in :meth:`drop` else)."""

    model: IrDrop
    weighted: Tensor
    current: Tensor
    alpha: float

    def drop(self) -> Tensor:
        """The drop in code-weight units, [N, out] (``current`` is overwritten)."""
        return self.weighted.mul(self.model.factor(self.current))
