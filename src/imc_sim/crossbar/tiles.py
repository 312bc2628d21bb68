"""A Linear or GPT-2 Conv1D layer programmed onto a grid of aihwkit torch inference tiles.

The layer's weight W [out, in] is cut into tiles of ``tile_rows`` inputs x ``tile_cols`` outputs;
each block lives in its own aihwkit ``TorchInferenceTile`` (read-out sped up), which owns the weight mapping
(digital scales), the programming, the drift and the drift compensation (``program_weights``,
``drift_weights``, ``alpha``). After each of those the layer gathers the tiles' conductance-derived
weights and digital scales into stacked tensors, and its forward runs the fused periphery of
:mod:`imc_sim.crossbar.periphery`. The bias stays digital.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from torch import Tensor, nn

from imc_sim.crossbar.periphery import Converters, TileStack, analog_mvm, read_variance
from imc_sim.devices.profile import Periphery
from imc_sim.peft.targets import in_out_features, weight_in_out


class FusedReadoutTile(TorchInferenceTile):
    """aihwkit's torch inference tile whose drift-compensation read-out (the one-hot input batch
    aihwkit sends through the tile after programming and after each drift) runs through the fused
    periphery instead of aihwkit's own MVM: the same computation, fewer passes."""

    conv: Converters
    w_noise: float

    @torch.no_grad()
    def _forward_drift_readout_tensor(self, reset_if: bool = False,
                                      exact_reference: bool = False) -> Tensor | None:
        if exact_reference or self.rpu_config.drift_compensation is None:
            return super()._forward_drift_readout_tensor(reset_if, exact_reference)
        if self.drift_readout_tensor is None or reset_if:
            self.drift_readout_tensor = self.rpu_config.drift_compensation.get_readout_tensor(
                self.tile.get_x_size())
        weight = self.tile.weight.detach().unsqueeze(0)
        read_var = read_variance(weight, self.rpu_config.noise_model, self.w_noise)
        stack = TileStack(weight, torch.ones(1, weight.shape[1]), None,  # fp32 product
                          None if read_var is None else read_var.bfloat16())
        return analog_mvm(self.drift_readout_tensor, stack, None, self.conv)


class CrossbarLinear(nn.Module):
    """y = analog(x W^T) + b on ``row_tiles`` x ``col_tiles`` aihwkit tiles (inference only)."""

    def __init__(self, layer: nn.Module, config: TorchInferenceRPUConfig, periphery: Periphery):
        super().__init__()
        self.in_features, self.out_features = in_out_features(layer)
        weight = weight_in_out(layer).detach().T.float().contiguous()  # [out, in]
        bias = layer.bias.detach().clone().float() if layer.bias is not None else None
        self.register_buffer("bias", bias)
        self.conv = Converters.from_periphery(periphery)
        self.noise_model, self.w_noise = config.noise_model, periphery.w_noise
        self.rows = min(periphery.tile_rows, self.in_features)
        self.row_tiles = math.ceil(self.in_features / self.rows)
        self.col_edges = list(range(0, self.out_features, periphery.tile_cols)) + [self.out_features]
        self.tiles = nn.ModuleList()
        for r in range(self.row_tiles):
            for c0, c1 in zip(self.col_edges[:-1], self.col_edges[1:], strict=True):
                block = weight[c0:c1, r * self.rows : (r + 1) * self.rows]
                tile = FusedReadoutTile(c1 - c0, block.shape[1], rpu_config=config)
                tile.conv, tile.w_noise = self.conv, self.w_noise
                tile.set_weights(block)
                tile.eval()
                self.tiles.append(tile)
        self._gather()

    @property
    def n_tiles(self) -> int:
        return len(self.tiles)

    def _tile(self, r: int, c: int) -> TorchInferenceTile:
        return self.tiles[r * (len(self.col_edges) - 1) + c]

    @torch.no_grad()
    def _gather(self) -> None:
        """Stack the tiles' weights [row_tiles, out, rows] and output scales [row_tiles, out]."""
        weights = torch.zeros(self.row_tiles, self.out_features, self.rows)
        scales = torch.ones(self.row_tiles, self.out_features)
        for r in range(self.row_tiles):
            for c, (c0, c1) in enumerate(zip(self.col_edges[:-1], self.col_edges[1:], strict=True)):
                tile = self._tile(r, c)
                block = tile.tile.get_weights()
                weights[r, c0:c1, : block.shape[1]] = block
                mapping = tile.get_scales()
                if mapping is not None:
                    scales[r, c0:c1] *= mapping.view(-1)
                if tile.rpu_config.drift_compensation is not None:
                    scales[r, c0:c1] *= tile.alpha.view(-1)
        read_var = read_variance(weights, self.noise_model, self.w_noise)
        self.stack = TileStack.build(weights, scales, self.conv, read_var)
        self.dense = None
        if self.conv.perfect and read_var is None:  # no periphery: one exact GEMM for the layer
            dense = (weights * scales.unsqueeze(-1)).permute(1, 0, 2).reshape(self.out_features, -1)
            self.dense = dense[:, : self.in_features].contiguous()

    @torch.no_grad()
    def program(self) -> None:
        """Program every tile once (aihwkit programming noise; draws drift coefficients)."""
        for tile in self.tiles:
            tile.program_weights()
        self._gather()

    @torch.no_grad()
    def drift(self, t_seconds: float) -> None:
        """Let the programmed state drift to ``t_seconds`` after programming (then compensate)."""
        for tile in self.tiles:
            tile.drift_weights(t_seconds)
        self._gather()

    def forward(self, x: Tensor) -> Tensor:
        if self.dense is not None:
            return F.linear(x, self.dense, self.bias)
        flat = x.reshape(-1, self.in_features)
        pad = self.row_tiles * self.rows - self.in_features
        if pad:
            flat = F.pad(flat, (0, pad))
        y = analog_mvm(flat, self.stack, self.bias, self.conv)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, tiles={self.row_tiles}x"
                f"{len(self.col_edges) - 1} of {self.rows} rows")
