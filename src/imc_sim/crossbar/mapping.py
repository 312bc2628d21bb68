"""Put a Hugging Face model on crossbars: which layers become tiles, and the mapping summary.

By default every Linear/Conv1D inside the transformer blocks is analog; embeddings, LayerNorm,
softmax, the pooler and the task head stay digital (``analog_head`` makes every Linear/Conv1D
outside the blocks analog too); ``layers`` names exactly the layers to map instead, for a model
without such blocks (a plain MLP). GPT-2's Conv1D is converted here: aihwkit's
``convert_to_analog`` leaves it digital. The output projection of an ``nn.MultiheadAttention``
never computes on tiles: the attention reads its weight directly instead of calling it.
``digital`` keeps chosen layers of those digital
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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from imc_sim import devices
from imc_sim.crossbar.input_ranges import NO_RANGE, StoredRanges
from imc_sim.crossbar.streams import ChipStreams, Stream
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices.profile import DeviceProfile, load_profile
from imc_sim.errors import ImcSimError
from imc_sim.fused_modules import attention_projections, unfuse_transformers
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.targets import BLOCK, in_out_features, is_linear, model_type, replace_module


def layer_names(names: Collection[str], argument: str) -> set[str]:
    """The layer names of ``argument`` as a set; a single string is refused (its characters are
    not layer names)."""
    if isinstance(names, str):
        raise ImcSimError(f"{argument}: give a list of layer names, not a string ({names!r})")
    return set(names)


Batch = Mapping[str, Any] | Sequence[Any] | torch.Tensor
"""One model input: keyword arguments, positional arguments, or the one argument."""


def forward(model: nn.Module, batch: Batch) -> object:
    """``model`` called on ``batch`` (see :data:`Batch`; a ``labels`` key is left out)."""
    if isinstance(batch, Mapping):
        return model(**{k: v for k, v in batch.items() if k != "labels"})
    if isinstance(batch, tuple | list):
        return model(*batch)
    if isinstance(batch, torch.Tensor):
        return model(batch)
    raise ImcSimError(f"a batch is a mapping of keyword arguments, a tuple or list of arguments, or a "
                      f"tensor, not {type(batch).__name__}")


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
    programmed_seed: int | None = None
    """The seed of the chip the tiles hold (:meth:`program`); None before programming."""

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
        digital original follows its tiles to the device they are on (``model.to()`` moved those).
        ``use_analog([])`` puts every original layer back: the digital model."""
        analog = layer_names(names, "use_analog")
        unknown = analog - set(self.layers)
        if unknown:
            raise ImcSimError(f"not analog layers of this deployment: {', '.join(sorted(unknown))}")
        self.restart_reads()
        for name, layer in self.layers.items():
            digital = self.originals[name]
            if name not in analog and digital.weight.device != layer.target.device:
                digital.to(layer.target.device)
            replace_module(self.model, name, layer if name in analog else digital)

    def program(self, streams: ChipStreams) -> None:
        """Program every layer with the chip's ``streams`` (see :class:`imc_sim.deploy.chip.Chip`)."""
        self.programmed_seed = None  # a programming stopped part way holds no chip
        for name, layer in self.layers.items():
            layer.program(streams, self.chip_name(name))
        self.programmed_seed = streams.seed

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

    def calibrate(self, batches: Iterable[Batch], source: str = "calibration batches") -> None:
        """Static input ranges (``periphery.input_range: static``): run the model, its analog
        layers computing the digital product, over ``batches`` (any iterable, a DataLoader or a
        generator too) and keep each row tile's range (:mod:`imc_sim.crossbar.input_ranges`);
        ``source`` names the batches in :meth:`summary`. A batch is the model's keyword arguments
        (a mapping such as tokenized inputs; a ``labels`` key is ignored), its positional arguments
        (a tuple or list) or its one argument (a tensor). Nothing to do for dynamic ranges; a
        static range without batches is a one-line error."""
        if isinstance(batches, torch.Tensor):
            raise ImcSimError("calibrate takes batches, not one tensor: give a list of batches, e.g. [x]")
        static = list(self._static().values())
        if not static:
            return
        for layer in static:
            layer.begin_calibration()
        run = 0
        try:
            with torch.no_grad():
                for batch in batches:
                    forward(self.model, batch)
                    run += 1
            if not run:
                raise ImcSimError(NO_RANGE)
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

    def __repr__(self) -> str:  # not the dataclass's, which prints the whole model
        return f"Deployment({self.describe()})"


def chosen_layers(model: nn.Module, linear: list[str], layers: Collection[str]) -> list[str]:
    """The Linear/Conv1D layers named in ``layers``, in model order; a one-line error for a name
    that is not one, or one that cannot compute on tiles."""
    chosen = layer_names(layers, "layers")
    if not chosen:
        raise ImcSimError("nothing to map to tiles: layers names no layer")
    unknown = chosen - set(linear)
    if unknown:
        raise ImcSimError(f"layers names no Linear/Conv1D module of the model: {', '.join(sorted(unknown))} "
                          f"(its Linear/Conv1D modules are e.g. {', '.join(linear[:3])})")
    attention = attention_projections(model, chosen)
    if attention:
        raise ImcSimError(f"{', '.join(sorted(attention))}: nn.MultiheadAttention reads its projection's "
                          "weight directly instead of calling it, so it cannot compute on tiles")
    return [n for n in linear if n in chosen]


def analog_layer_names(model: nn.Module, analog_head: bool = False,
                       layers: Collection[str] | None = None) -> list[str]:
    """Names of the Linear/Conv1D layers that go onto tiles, in model order: those named in
    ``layers``, else those inside numbered transformer blocks (every one with ``analog_head``),
    leaving out the projections of ``nn.MultiheadAttention`` (:func:`attention_projections`)."""
    linear = [n for n, m in model.named_modules() if is_linear(m)]
    if layers is not None:
        if analog_head:
            raise ImcSimError("layers and analog_head=True exclude each other: name every layer to map "
                              "in layers")
        return chosen_layers(model, linear, layers)
    candidates = [n for n in linear if n not in attention_projections(model, linear)]
    if analog_head:
        return candidates
    in_blocks = [n for n in candidates if re.fullmatch(BLOCK, n)]
    if not in_blocks:
        kind = model_type(model)
        raise ImcSimError(f"no Linear/Conv1D layer of model type {kind!r} lies in a numbered transformer "
                          f"block ({len(candidates)} lie elsewhere): nothing to map to tiles; name the "
                          f"layers to map, e.g. layers={candidates[:3]!r}, or pass analog_head=True for "
                          "every Linear layer" if candidates else
                          f"model type {kind!r} has no Linear/Conv1D layer that could compute on tiles: "
                          "nothing to map to tiles")
    return in_blocks


def chip_name(model: nn.Module, name: str) -> str:
    """``X`` for the base layer ``X.base`` of an adapter ``X`` kept digital, else ``name``: the
    layer of the merged model that the base layer stands for."""
    parent, _, child = name.rpartition(".")
    if child == "base" and parent and isinstance(model.get_submodule(parent), AdapterLayer):
        return parent
    return name


def _check_registered_once(model: nn.Module, names: Collection[str]) -> None:
    """One line if a layer of ``names`` is also registered under another name: replacing it under
    one name would leave its other use digital."""
    primary = {id(model.get_submodule(n)): n for n in names}
    for alias, module in model.named_modules(remove_duplicate=False):
        if id(module) in primary and alias != primary[id(module)]:
            raise ImcSimError(f"{alias} is the module {primary[id(module)]} registered a second time; a tile "
                              "would replace it under one name only: register each layer once")


def _refuse_saving(module: nn.Module, prefix: str, keep_vars: bool) -> None:
    """A tile's state is a chip (its profile and seed), not a layer's weights: a state dict of it,
    as ``save_pretrained`` writes, would load as a model whose analog layers are random."""
    raise ImcSimError(f"{prefix.rstrip('.') or 'the layer'} is on tiles: a deployed model has no weights "
                      "to save (a chip is its profile and seed); deployment.use_analog([]) gives back the "
                      "digital model to save")


def deploy_model(model: nn.Module, profile: DeviceProfile | str, analog_head: bool = False,
                 digital: Collection[str] = (), layers: Collection[str] | None = None) -> Deployment:
    """Replace the analog layers of ``model`` (:func:`analog_layer_names`: ``layers``, exact names
    of Linear/Conv1D modules, or by default those in the transformer blocks) by tiles of
    ``profile`` (or a profile's name or YAML path), unprogrammed; the layers named in ``digital``
    stay digital.

    The model is changed in place: put in eval mode, its analog layers' weights leave
    ``model.parameters()`` (they become buffers of the tiles), and torch's fused Transformer
    encoder path is turned off above them; ``deployment.use_analog([])`` puts every original
    layer back, the digital model."""
    if any(isinstance(m, CrossbarLinear) for m in model.modules()):
        raise ImcSimError("the model is deployed already (some of its layers are tiles): "
                          "deployment.use_analog([]) gives back the digital model to deploy again")
    if isinstance(profile, str):
        profile = load_profile(profile)
    names = analog_layer_names(model, analog_head, layers)
    kept_names = layer_names(digital, "digital")
    unknown = kept_names - set(names)
    if unknown:
        raise ImcSimError(f"not layers that could go onto tiles: {', '.join(sorted(unknown))}")
    analog = [n for n in names if n not in kept_names]
    if names and not analog:
        raise ImcSimError("nothing to map to tiles: every layer that could go onto tiles is in digital")
    if any(model.get_submodule(n).weight.is_meta for n in analog):
        raise ImcSimError("the model's weights are on the meta device (not materialised): load its "
                          "weights before deploying")
    _check_registered_once(model, analog)
    family = devices.build_family(profile)
    tiles: dict[str, CrossbarLinear] = {}
    originals: dict[str, nn.Module] = {}
    kept = {n: model.get_submodule(n).weight.numel() for n in names if n in kept_names}
    for name in analog:
        original = model.get_submodule(name)
        tiles[name] = CrossbarLinear(original, profile, family)
        tiles[name].register_state_dict_pre_hook(_refuse_saving)
        replace_module(model, name, tiles[name])
        originals[name] = original
    unfuse_transformers(model, analog)
    model.eval()
    # what stays a parameter (a weight tied to a digital module, such as GPT-2's embedding, too)
    # and the analog layers' biases, added digitally
    digital = sum(p.numel() for p in model.parameters()) + sum(
        layer.bias.numel() for layer in tiles.values() if layer.bias is not None)
    renamed = {n: chip_name(model, n) for n in tiles if chip_name(model, n) != n}
    return Deployment(model, profile, tiles, digital, originals, kept, chip_names=renamed)


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
