"""Put a Hugging Face model on crossbars: which layers become tiles, and the mapping summary.

By default every Linear/Conv1D inside the transformer blocks is analog; embeddings, LayerNorm,
softmax, the pooler and the task head stay digital (``analog_head`` makes every Linear/Conv1D
outside the blocks analog too). GPT-2's Conv1D is converted here: aihwkit's
``convert_to_analog`` leaves it digital. ``digital`` keeps chosen layers of those digital
(placement, :mod:`imc_sim.crossbar.placement`); a deployment keeps each analog layer's digital
original, so that :meth:`Deployment.use_analog` can switch layers between tile and digital
without reprogramming.

A model whose adapters stay digital (GRASP's input scale and shift in the periphery before the
DAC, :func:`imc_sim.checkpoint.load_adapted`) puts the frozen base layer ``X.base`` of each adapter
``X`` onto tiles; that layer draws its chip's noise under the name ``X`` (:func:`chip_name`), so
the merged and the unmerged deployment of one checkpoint on one seed are the same chip.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from imc_sim import devices
from imc_sim.crossbar.input_ranges import NO_RANGE, StoredRanges
from imc_sim.crossbar.streams import ChipStreams, Stream
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.targets import BLOCK, in_out_features, is_linear, model_type, replace_module


@dataclass
class Deployment:
    """A model whose chosen layers are :class:`CrossbarLinear` on one device profile.

    ``originals`` holds the digital module of every layer in ``layers``; ``kept_digital`` the
    layers that could have gone onto tiles but stay digital, with their weight counts;
    ``input_ranges`` where the static input ranges came from (None: dynamic ranges, or none yet)."""

    model: nn.Module
    profile: DeviceProfile
    layers: dict[str, CrossbarLinear]
    digital_params: int
    originals: dict[str, nn.Module] = field(default_factory=dict)
    kept_digital: dict[str, int] = field(default_factory=dict)
    input_ranges: str | None = None
    chip_names: dict[str, str] = field(default_factory=dict)
    """The name each layer's chip streams are drawn under, where it is not the layer's own."""

    def chip_name(self, name: str) -> str:
        return self.chip_names.get(name, name)

    def restart_reads(self) -> None:
        """Every tile's per-read noise restarts from the stream of its current drift time, as
        after a drift: a model evaluated now sees what it would see evaluated first."""
        for layer in self.layers.values():
            layer.read_stream = Stream(layer.read_stream.keys, layer.read_stream.device)

    def use_analog(self, names: Collection[str]) -> None:
        """Layers ``names`` compute on their tiles, every other layer of ``layers`` digitally (its
        original module), without reprogramming; each tile's per-read noise restarts as after a
        drift, so the model computes what a deployment of only ``names`` on this chip would. A
        digital original follows its tiles to the device they are on (``model.to()`` moved those)."""
        unknown = set(names) - set(self.layers)
        if unknown:
            raise KeyError(f"not analog layers of this deployment: {sorted(unknown)}")
        self.restart_reads()
        for name, layer in self.layers.items():
            digital = self.originals[name]
            if name not in names and digital.weight.device != layer.target.device:
                digital.to(layer.target.device)
            replace_module(self.model, name, layer if name in names else digital)

    def program(self, streams: ChipStreams) -> None:
        """Program every layer with the chip's ``streams`` (see :class:`imc_sim.deploy.chip.Chip`)."""
        for name, layer in self.layers.items():
            layer.program(streams, self.chip_name(name))

    def _static(self) -> dict[str, CrossbarLinear]:
        return {name: layer for name, layer in self.layers.items() if layer.static_ranges}

    def use_stored_ranges(self, stored: StoredRanges | None) -> bool:
        """Static input ranges from ``stored`` (a checkpoint's), if they fit: computed on this
        profile's row tiles and percentile, one range per row tile for every static layer.
        Returns whether they were used (nothing changes otherwise)."""
        static = self._static()
        if not static or stored is None or not stored.fits(self.profile.periphery):
            return False
        if any(name not in stored.layers or stored.layers[name].shape != (layer.row_tiles,)
               for name, layer in static.items()):
            return False
        for name, layer in static.items():
            layer.input_ranges = stored.layers[name].to(layer.target.device, torch.float32)
        self.input_ranges = "checkpoint"
        return True

    def calibrate(self, batches: Sequence[dict], source: str = "calibration batches") -> None:
        """Static input ranges (``periphery.input_range: static``): run the model, its analog
        layers computing the digital product, over ``batches`` (tokenized model inputs; a
        ``labels`` key is ignored) and keep each row tile's range
        (:mod:`imc_sim.crossbar.input_ranges`); ``source`` names the batches in :meth:`summary`.
        Nothing to do for dynamic ranges; a static range without batches is a one-line error."""
        static = list(self._static().values())
        if not static:
            return
        if not batches:
            raise ImcSimError(NO_RANGE)
        for layer in static:
            layer.begin_calibration()
        try:
            with torch.no_grad():
                for batch in batches:
                    self.model(**{k: v for k, v in batch.items() if k != "labels"})
        except BaseException:
            for layer in static:
                layer.end_calibration(keep=False)
            raise
        for layer in static:
            layer.end_calibration()
        self.input_ranges = source

    def drift(self, t_seconds: float, streams: ChipStreams) -> None:
        """Drift every programmed layer to ``t_seconds`` after programming."""
        for name, layer in self.layers.items():
            layer.drift(t_seconds, streams, self.chip_name(name))

    @property
    def weights_on_nvm(self) -> int:
        return sum(layer.in_features * layer.out_features for layer in self.layers.values())

    @property
    def fraction_on_chip(self) -> float:
        """Weights on NVM / weights of every layer that could be analog (1 without placement)."""
        mappable = self.weights_on_nvm + sum(self.kept_digital.values())
        return self.weights_on_nvm / mappable if mappable else 0.0

    def summary(self) -> dict[str, object]:
        """Tiles, weights on NVM and parameters left digital; with layers kept digital, also
        ``placement``: their names and the fraction of the layers' weights on the chip."""
        p = self.profile.periphery
        out: dict[str, object] = {
            "device": self.profile.name,
            "analog_layers": len(self.layers),
            "tiles": sum(layer.n_tiles for layer in self.layers.values()),
            "tile_size": f"{p.tile_rows}x{p.tile_cols}",
            "weights_on_nvm": self.weights_on_nvm,
            "digital_params": self.digital_params,
        }
        if self.kept_digital:
            out["placement"] = {"digital_layers": list(self.kept_digital),
                                "fraction_on_chip": self.fraction_on_chip}
        if self.input_ranges is not None:
            out["input_ranges"] = self.input_ranges
        return out

    def describe(self) -> str:
        s = self.summary()
        text = (f"mapped {s['analog_layers']} layers onto {s['tiles']} tiles of {s['tile_size']} "
                f"({self.profile.name}): {s['weights_on_nvm']:,} weights on NVM, "
                f"{s['digital_params']:,} parameters digital")
        if self.kept_digital:
            text += (f"; {len(self.kept_digital)} layers kept digital, "
                     f"{100 * self.fraction_on_chip:.1f}% of the layers' weights on the chip")
        if self.input_ranges is not None:
            text += f"; static input ranges from the {self.input_ranges}"
        if self.chip_names:
            text += f"; {len(self.chip_names)} adapters digital, before their tiles' DACs"
        return text


def analog_layer_names(model: nn.Module, analog_head: bool = False) -> list[str]:
    """Names of the Linear/Conv1D layers that go onto tiles."""
    linear = [n for n, m in model.named_modules() if is_linear(m)]
    if analog_head:
        return linear
    in_blocks = [n for n in linear if re.fullmatch(BLOCK, n)]
    if not in_blocks:
        raise ImcSimError(f"no Linear/Conv1D layer of model type {model_type(model)!r} lies in a numbered "
                          f"transformer block ({len(linear)} lie elsewhere, e.g. {', '.join(linear[:3])}): "
                          "nothing to map to tiles")
    return in_blocks


def chip_name(model: nn.Module, name: str) -> str:
    """``X`` for the base layer ``X.base`` of an adapter ``X`` kept digital, else ``name``: the
    layer of the merged model that the base layer stands for."""
    parent, _, child = name.rpartition(".")
    if child == "base" and parent and isinstance(model.get_submodule(parent), AdapterLayer):
        return parent
    return name


def deploy_model(model: nn.Module, profile: DeviceProfile, analog_head: bool = False,
                 digital: Collection[str] = ()) -> Deployment:
    """Replace the analog layers of ``model`` (in place) by tiles of ``profile``, unprogrammed;
    the layers named in ``digital`` stay digital."""
    names = analog_layer_names(model, analog_head)
    unknown = set(digital) - set(names)
    if unknown:
        raise ImcSimError(f"not layers that could go onto tiles: {', '.join(sorted(unknown))}")
    family = devices.build_family(profile)
    total = sum(p.numel() for p in model.parameters())
    layers: dict[str, CrossbarLinear] = {}
    originals: dict[str, nn.Module] = {}
    kept: dict[str, int] = {}
    for name in names:
        original = model.get_submodule(name)
        if name in digital:
            kept[name] = original.weight.numel()
            continue
        layer = CrossbarLinear(original, profile, family)
        replace_module(model, name, layer)
        layers[name], originals[name] = layer, original
    model.eval()
    on_nvm = sum(layer.in_features * layer.out_features for layer in layers.values())
    renamed = {n: chip_name(model, n) for n in layers if chip_name(model, n) != n}
    return Deployment(model, profile, layers, total - on_nvm, originals, kept, chip_names=renamed)


def share_tiles(deployment: Deployment, model: nn.Module) -> None:
    """Put ``deployment``'s tiles into ``model`` (in place), where the layers they stand for are:
    ``X.base`` where ``model`` has an adapter ``X`` kept digital, else ``X``. Both models then
    compute on the same programmed tiles; every layer must have the tile's shape."""
    for name, layer in deployment.layers.items():
        path = deployment.chip_name(name)
        if isinstance(model.get_submodule(path), AdapterLayer):
            path += ".base"
        target = model.get_submodule(path)
        if not is_linear(target) or in_out_features(target) != (layer.in_features, layer.out_features):
            raise ImcSimError(f"{path} does not fit the tiles of {deployment.chip_name(name)}")
        replace_module(model, path, layer)
