"""Hardware-aware fine-tuning with IBM's aihwkit-lightning: the field's AHWA recipe as a method.

Every Linear layer inside the transformer blocks (what ``imc-sim deploy`` puts on tiles) becomes an
aihwkit-lightning ``AnalogLinear`` and the whole model is fine-tuned (full fine-tuning, the task
head and the learned input ranges included). Before every training step each layer's weights are
clipped, W <- clamp(W, -c s_col, c s_col) (s_col the std of each output column's weights), and in
a training forward each row tile k of a layer (T tiles of at most ``tile_rows`` inputs) computes

    r_k    = its learned input range (the mean of init_std x std(x) over the first batches, then
             learned by its straight-through gradient, with a decay while few inputs clip)
    x_q    = DAC(clamp(x_k, -r_k, r_k))                       8 bits over [-r_k, r_k]
    m_col  = max |W_k[col]|
    W_n    = W_k + weight_noise x m_col x N(0, 1)             fresh noise every forward
    y_k    = ADC(x_q W_n^T + out_noise x r_k x m_col / sqrt(T) x N(0, 1))
             (8 bits over +-out_bound x r_k x m_col)

and y = sum_k y_k + b; the gradient is the library's straight-through one. Evaluation keeps the converters and
drops the noise. With a digital warm-up (``--device-warmup F``) the layers compute the plain
product x W^T + b, unclipped, for the first F of the steps: IBM's recipe, hardware-aware
fine-tuning of a digitally fine-tuned model, in one run; the input ranges are then initialised on
the fine-tuned model's inputs. The checkpoint is an ordinary ``full`` one: the digital weights after a last
clip, loadable and deployable without the package (:meth:`Lightning.export` in
:mod:`imc_sim.peft.methods`). The learned input ranges are not kept: pcm deploys with abs-max
input scaling per vector, and the static ranges a checkpoint may hold are percentile-calibrated
ones (:class:`~imc_sim.crossbar.input_ranges.StoredRanges`), not learned ones.

The weight-noise and output-noise draws come from torch's global generator, seeded with the run's
seed (as dropout's), so a run is reproducible on one machine. aihwkit-lightning is an optional
extra (``pip install imc-sim[lightning]``); its Triton kernels are GPU-only and off by default,
so its torch path runs everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from imc_sim.errors import ImcSimError
from imc_sim.peft.inject import freeze_all_but
from imc_sim.peft.targets import find_targets, replace_module

MISSING = "--method lightning needs aihwkit-lightning, not installed: pip install imc-sim[lightning]"
TARGETS = "all-linear"  # the Linear layers of the transformer blocks: deploy's analog layers


@dataclass(frozen=True)
class LightningRecipe:
    """The AHWA settings at pcm-like values. Sources: converters, output noise and bound, tiles and
    the input-range settings as aihwkit's ``StandardHWATrainingPreset`` (Rasch et al., Nat. Commun.
    14, 5282 (2023)), which the pcm profile's periphery also follows; per-column clipping at 2.5
    std and per-column weight noise as aihwkit-lightning's user guide (it recommends a clip in
    [2, 3.5] and shows 0.05 weight noise; Buechel et al., "AIHWKIT-Lightning", 2024); 0.05 is also
    the pcm profile's own weight error after global drift compensation, 0.040 / 0.045 / 0.057 of
    the column max at 1 h / 1 d / 1 y on MiniLM-L6's block weights (MomentTables of the profile).
    """

    weight_noise: float = 0.05
    """std of the additive Gaussian weight noise, in units of each output column's max |w|."""
    clip_sigma: float = 2.5
    """each column's weights are clipped at +-clip_sigma x their std before every step."""
    tile_rows: int = 512
    """inputs per tile: a learned input range per row tile (the pcm profile's tiles)."""
    dac_levels: float = 254.0
    """input quantisation steps over [-r, r]: 8 bits (2^8 - 2)."""
    adc_levels: float = 254.0
    """output quantisation steps over +-out_bound: 8 bits."""
    out_bound: float = 10.0
    """ADC range in units of r x max|W[col]| (the pcm profile's out_bound)."""
    out_noise: float = 0.04
    """std of the additive output noise per column, in the same units (the pcm profile's)."""
    range_init_batches: int = 100
    """training batches the input ranges are initialised on."""
    range_init_std: float = 3.0
    """initial range: this many std of the layer's inputs."""
    range_decay: float = 0.001
    """shrinks a range while fewer than 5 % of its inputs clip."""


def _library() -> SimpleNamespace:
    """The parts of aihwkit-lightning used here, or a one-line error if it is not installed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a notice when Triton is absent
            from aihwkit_lightning.nn import AnalogLinear
            from aihwkit_lightning.simulator.configs import (
                TorchInferenceRPUConfig,
                WeightClipType,
                WeightNoiseInjectionType,
            )
    except ImportError:
        raise ImcSimError(MISSING) from None
    return SimpleNamespace(AnalogLinear=AnalogLinear, RPUConfig=TorchInferenceRPUConfig,
                           ClipType=WeightClipType, NoiseType=WeightNoiseInjectionType)


@functools.cache
def _warmable_linear() -> type:
    """aihwkit-lightning's ``AnalogLinear`` with a digital mode for the warm-up (built once, on
    first use, so that the package stays optional)."""

    class WarmableAnalogLinear(_library().AnalogLinear):
        """An ``AnalogLinear`` that computes x W^T + b while ``digital`` is set."""

        digital = False

        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            if self.digital:
                return functional.linear(inp, self.weight, self.bias)
            return super().forward(inp)

    return WarmableAnalogLinear


def require_lightning() -> None:
    """A one-line :class:`ImcSimError` unless aihwkit-lightning imports."""
    _library()


def rpu_config(recipe: LightningRecipe) -> Any:
    """The recipe as an aihwkit-lightning ``TorchInferenceRPUConfig``."""
    lib = _library()
    config = lib.RPUConfig()
    config.forward.inp_res = recipe.dac_levels
    config.forward.out_res = recipe.adc_levels
    config.forward.out_bound = recipe.out_bound
    config.forward.out_noise = recipe.out_noise
    config.forward.out_noise_per_channel = True
    config.clip.type = lib.ClipType.LAYER_GAUSSIAN_PER_CHANNEL
    config.clip.sigma = recipe.clip_sigma
    config.modifier.noise_type = lib.NoiseType.ADD_NORMAL_PER_CHANNEL
    config.modifier.std_dev = recipe.weight_noise
    config.mapping.max_input_size = recipe.tile_rows
    ranges = config.pre_post.input_range
    ranges.enable = True
    ranges.learn_input_range = True
    ranges.init_from_data = recipe.range_init_batches
    ranges.init_std_alpha = recipe.range_init_std
    ranges.decay = recipe.range_decay
    return config


def _clip_before_training_forward(module: nn.Module, _args: tuple) -> None:
    """The weight clip the library's AnalogOptimizer applies after each step, applied before each
    training forward instead (the same weights reach every step; the loop's optimizer stays plain)."""
    if module.training and not module.digital:
        module.clip_weights()


def attach_lightning(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """Convert the block Linear layers of ``model`` to analog layers (in place, on their device);
    every parameter trains."""
    recipe = LightningRecipe(**config)
    for name in find_targets(model, TARGETS):
        layer = model.get_submodule(name)
        if not isinstance(layer, nn.Linear):
            raise ImcSimError(f"--method lightning converts nn.Linear layers; {name} is a "
                              f"{type(layer).__name__}")
        analog = _warmable_linear().from_digital(layer, rpu_config(recipe))
        analog.register_forward_pre_hook(_clip_before_training_forward)
        replace_module(model, name, analog)
    freeze_all_but(model, lambda _: True)
    return model


def set_analog(model: nn.Module, analog: bool) -> None:
    """Switch every analog layer of ``model`` between its analog forward and the digital one."""
    for _, layer in analog_linears(model):
        layer.digital = not analog


def analog_linears(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The aihwkit-lightning analog layers of ``model`` by name."""
    analog = _library().AnalogLinear
    return [(n, m) for n, m in model.named_modules() if isinstance(m, analog)]


@torch.no_grad()
def merge_lightning(model: nn.Module) -> nn.Module:
    """Clip each analog layer's weights once more and put a plain Linear holding them in its place
    (in place); every parameter stays trainable, as a ``full`` checkpoint's."""
    for name, layer in analog_linears(model):
        layer.clip_weights()
        replace_module(model, name, type(layer).to_digital(layer).requires_grad_(True))
    return model
