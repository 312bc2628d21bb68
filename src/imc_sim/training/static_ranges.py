"""Static input ranges in device-aware training: calibrated once, as deploy calibrates them.

On a profile with ``periphery.input_range: static`` every analog layer's DAC range per row tile is
calibrated once, when the device enters the training loop (the first device-aware step: the start
of training, or the end of a ``--device-warmup``, so that the ranges are those of the model the
device first sees, not of the one before the digital warm-up): the model's digital forward in
eval mode runs over the first batches of the training split (:mod:`imc_sim.calibration`), and
each layer keeps r = mean over batches of the ``input_percentile``-th percentile of |x| per row
tile, with the :class:`~imc_sim.crossbar.input_ranges.Calibration` that deploy uses, on the row
tiles deploy cuts (:class:`~imc_sim.crossbar.grid.TileGrid`). Every device-aware forward then
divides each row tile's inputs by r before the DAC and multiplies its outputs back
(``analog_mvm`` with the ranges, as on the deployed chip), and the checkpoint keeps the ranges
(:class:`~imc_sim.crossbar.input_ranges.StoredRanges`) for deploy to use. The ranges are fixed
after calibration, not learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from imc_sim.crossbar.grid import TileGrid
from imc_sim.crossbar.input_ranges import Calibration, StoredRanges
from imc_sim.devices.profile import Periphery
from imc_sim.errors import ImcSimError
from imc_sim.torch_device import to_device

PEFT_PREFIX = "base_model.model."  # Hugging Face peft's wrapper: merged away before deploy

NO_BATCHES = ("static input ranges need calibration data: no training batch reached every analog "
              "layer")
NOT_CALIBRATED = ("device-aware training on static input ranges needs them calibrated first: "
                  "DeviceTraining.calibrate(training batches)")


def deploy_name(model: nn.Module, name: str) -> str:
    """The name the layer ``name`` of the training model has in the merged model that deploy
    maps (peft's wrapper prefix dropped; the adapters of imc-sim keep their layer's name)."""
    return name.removeprefix(PEFT_PREFIX) if hasattr(model, "peft_config") else name


def row_tile_grid(in_features: int, periphery: Periphery) -> TileGrid:
    """The row tiles of a layer with ``in_features`` inputs on ``periphery``'s tiles, as deploy
    cuts it (the row tiles depend on the inputs alone, not on the outputs: one output here)."""
    return TileGrid.of(in_features, 1, periphery.tile_rows, periphery.tile_cols, periphery.tile_split)


def stored_ranges(model: nn.Module, periphery: Periphery, names: Sequence[str],
                  ranges: Sequence[Tensor]) -> StoredRanges:
    """The ranges of the layers ``names`` of ``model``, by their names in the merged model."""
    return StoredRanges(periphery.tile_rows, periphery.tile_split, periphery.input_percentile,
                        {deploy_name(model, name): r for name, r in zip(names, ranges, strict=True)})


@torch.no_grad()
def calibrate_inputs(model: nn.Module, modules: Sequence[nn.Module], periphery: Periphery,
                     batches: Sequence[dict[str, Tensor]]) -> list[Tensor]:
    """Each module's ranges over ``batches`` (a ``labels`` key is ignored) on ``periphery``'s
    row tiles and percentile: the model runs in eval mode (no dropout; its training mode is
    restored) while each module's input is added to its calibration; returns one [row_tiles]
    tensor per module (a one-line error if there are no batches)."""
    device = next(model.parameters()).device
    calibrations: list[Calibration | None] = [None] * len(modules)

    def add(index: int, x: Tensor) -> None:
        if calibrations[index] is None:
            calibrations[index] = Calibration(row_tile_grid(x.shape[-1], periphery).rows,
                                              periphery.input_percentile)
        calibrations[index].add(x.reshape(-1, x.shape[-1]))

    hooks = [module.register_forward_pre_hook(lambda _, args, i=i: add(i, args[0]))
             for i, module in enumerate(modules)]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(**to_device({k: v for k, v in batch.items() if k != "labels"}, device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    if any(calibration is None for calibration in calibrations):
        raise ImcSimError(NO_BATCHES)
    return [calibration.ranges() for calibration in calibrations]
