"""Put a Hugging Face model on crossbars: which layers become tiles, and the mapping summary.

By default every Linear/Conv1D inside the transformer blocks is analog; embeddings, LayerNorm,
softmax, the pooler and the task head stay digital (``analog_head`` makes every Linear/Conv1D
outside the blocks analog too). GPT-2's Conv1D is converted here: aihwkit's
``convert_to_analog`` leaves it digital.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from imc_sim import devices
from imc_sim.crossbar.input_ranges import NO_RANGE
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.peft.targets import find_targets, is_linear, replace_module


@dataclass
class Deployment:
    """A model whose chosen layers are :class:`CrossbarLinear` on one device profile."""

    model: nn.Module
    profile: DeviceProfile
    layers: dict[str, CrossbarLinear]
    digital_params: int

    def program(self, streams: ChipStreams) -> None:
        """Program every layer with the chip's ``streams`` (see :class:`imc_sim.deploy.chip.Chip`)."""
        for name, layer in self.layers.items():
            layer.program(streams, name)

    def calibrate(self, batches: Sequence[dict]) -> None:
        """Static input ranges (``periphery.input_range: static``): run the model, its analog
        layers computing the digital product, over ``batches`` (tokenized model inputs; a
        ``labels`` key is ignored) and keep each row tile's range
        (:mod:`imc_sim.crossbar.input_ranges`). Nothing to do for dynamic ranges; a static range
        without batches is a one-line error."""
        static = [layer for layer in self.layers.values() if layer.static_ranges]
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

    def drift(self, t_seconds: float, streams: ChipStreams) -> None:
        """Drift every programmed layer to ``t_seconds`` after programming."""
        for name, layer in self.layers.items():
            layer.drift(t_seconds, streams, name)

    def summary(self) -> dict[str, int | str]:
        """Tiles, weights on NVM and parameters left digital."""
        on_nvm = sum(layer.in_features * layer.out_features for layer in self.layers.values())
        p = self.profile.periphery
        return {
            "device": self.profile.name,
            "analog_layers": len(self.layers),
            "tiles": sum(layer.n_tiles for layer in self.layers.values()),
            "tile_size": f"{p.tile_rows}x{p.tile_cols}",
            "weights_on_nvm": on_nvm,
            "digital_params": self.digital_params,
        }

    def describe(self) -> str:
        s = self.summary()
        return (f"mapped {s['analog_layers']} layers onto {s['tiles']} tiles of {s['tile_size']} "
                f"({self.profile.name}): {s['weights_on_nvm']:,} weights on NVM, "
                f"{s['digital_params']:,} parameters digital")


def analog_layer_names(model: nn.Module, analog_head: bool = False) -> list[str]:
    """Names of the Linear/Conv1D layers that go onto tiles."""
    if analog_head:
        return [n for n, m in model.named_modules() if is_linear(m)]
    return find_targets(model, "all-linear")


def deploy_model(model: nn.Module, profile: DeviceProfile, analog_head: bool = False) -> Deployment:
    """Replace the analog layers of ``model`` (in place) by tiles of ``profile``, unprogrammed."""
    family = devices.build_family(profile)
    total = sum(p.numel() for p in model.parameters())
    layers: dict[str, CrossbarLinear] = {}
    for name in analog_layer_names(model, analog_head):
        layer = CrossbarLinear(model.get_submodule(name), profile, family)
        replace_module(model, name, layer)
        layers[name] = layer
    model.eval()
    on_nvm = sum(layer.in_features * layer.out_features for layer in layers.values())
    return Deployment(model, profile, layers, total - on_nvm)
