"""Where a deployment's static input ranges (``periphery.input_range: static``) come from.

``auto`` takes the first of:

1. ``checkpoint``: the ranges device-aware training on a static profile calibrated and saved, where
   they were computed on this profile's row tiles (``tile_rows``, ``tile_split``) and percentile
   for every analog layer: the DAC training saw; no data is read;
2. ``train``: the training data the checkpoint records (its own ``--train-file``, or GLUE's
   ``train.tsv`` under a recorded ``--data-dir``), where that file is here: its first batches
   (:mod:`imc_sim.calibration`), the principled source, since a chip is calibrated before it meets
   the data it is scored on;
3. ``dev``: the first :data:`~imc_sim.calibration.CALIBRATION_BATCHES` batches of the dev set
   (their inputs only, never their labels).

Asking for one source that has nothing is a one-line error. A sweep unit takes 1 or 3 only (no
training file): its numbers depend on the checkpoint and the plan's dev file alone, whichever
machine runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

from imc_sim.calibration import CALIBRATION_BATCHES, recorded_training_source, training_batches
from imc_sim.checkpoint import LoadedModel
from imc_sim.crossbar.input_ranges import StoredRanges
from imc_sim.crossbar.mapping import Deployment
from imc_sim.errors import ImcSimError
from imc_sim.torch_device import to_device

SOURCES = ("auto", "checkpoint", "train", "dev")


def check_source(source: str) -> None:
    """One-line error unless ``source`` is one of :data:`SOURCES`."""
    if source not in SOURCES:
        raise ImcSimError(f"--input-ranges must be one of {', '.join(SOURCES)}, got {source!r}")


def set_input_ranges(deployment: Deployment, loaded: LoadedModel, dev_batches: Sequence[dict],
                     source: str = "auto", what: str = "the checkpoint", read_training: bool = True) -> None:
    """Give ``deployment``'s static layers their ranges from ``source`` (one of :data:`SOURCES`)
    for the checkpoint ``loaded`` (named ``what`` in errors), whose dev set is ``dev_batches``;
    ``read_training`` False skips the training file. Nothing to do for dynamic ranges; the
    deployment's ``input_ranges`` says which source was used."""
    check_source(source)
    if not any(layer.static_ranges for layer in deployment.layers.values()):
        return
    stored = StoredRanges.from_record(loaded.meta.get("input_ranges"))
    if source in ("auto", "checkpoint") and deployment.use_stored_ranges(stored):
        return
    p = deployment.profile.periphery
    if source == "checkpoint":
        raise ImcSimError(f"{what} holds no static input ranges for {deployment.profile.name}'s row "
                          f"tiles ({p.tile_rows} rows, {p.tile_split} split, percentile "
                          f"{p.input_percentile:g}): train it device-aware on such a profile, or "
                          "pass --input-ranges auto")
    training = (recorded_training_source(loaded.meta, loaded.task)
                if source in ("auto", "train") and read_training else None)
    if training is not None:
        args = loaded.meta.get("train_args", {})
        batches = training_batches(training[0], loaded.task, loaded.tokenizer,
                                   args.get("max_length", 64), args.get("train_limit"))
        device = next(loaded.model.parameters()).device
        deployment.calibrate([to_device(b, device) for b in batches], f"training data ({training[1]})")
    elif source == "train":
        raise ImcSimError(f"{what} records no training file that is here to calibrate static input "
                          "ranges on: pass --input-ranges auto or dev")
    else:
        deployment.calibrate(dev_batches[:CALIBRATION_BATCHES], "dev set")
