"""Fidelity, layer by layer: imc-sim's crossbar layer against aihwkit 1.1.0's own tiles.

Every analog layer of a trained model is fed its real inputs X (captured with forward hooks on a
few dev batches, real tokens only) and computed three ways with the same weights: digitally
(y_d = X W^T + b), by imc-sim (:class:`~imc_sim.crossbar.tiles.CrossbarLinear`, chip seed s) and
by aihwkit (one ``TorchInferenceTile`` per tile of the same cut, configured by
:func:`~imc_sim.crossbar.rpu_config.build_rpu_config`; aihwkit draws from torch's global
generator, seeded from (s, layer) inside ``fork_rng``). Per layer, chip and simulator the relative
output error

    e = ||y_analog - y_d||_F / ||y_d||_F

is averaged over chips; the two simulators agree where |e_imc - e_aihwkit| / e_aihwkit is small.
Its Monte-Carlo standard error (from each side's spread over chips) says whether a difference is
resolved: the errors of BERT's FFN output projections, whose inputs and outputs have a few outlier
dimensions, are heavy-tailed over chips (measured: 4 % on one chip, 26 % on the next), so that a
few chips do not pin their mean down to 5 %.
Only effects both implement are compared: DAC/ADC, output noise, programming noise, drift with
its accumulated 1/f read noise, drift compensation and static input ranges (one range per row
tile, calibrated on X by imc-sim's :class:`~imc_sim.crossbar.input_ranges.Calibration` and given to
aihwkit's tile as its fixed ``input_range``). Per-read (cycle-to-cycle) weight noise is left out:
aihwkit's torch tiles refuse ``forward.w_noise``. So are deploy's chip effects that aihwkit's tile
does not model (several devices per weight, faults).
"""

from __future__ import annotations  # noqa: I001 - imc_sim is imported first, out of order

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import imc_sim  # noqa: F401 - before transformers: its torchvision guard (imc_sim/torchvision_guard.py)
import torch
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from torch import Tensor, nn

from imc_sim.crossbar.input_ranges import Calibration
from imc_sim.crossbar.rpu_config import build_rpu_config
from imc_sim.crossbar.streams import ChipStreams, stable_seed
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.deploy.results import SeedSummary
from imc_sim.devices import build_family
from imc_sim.devices.profile import DeviceProfile, load_profile
from imc_sim.errors import ImcSimError
from imc_sim.table import format_table
from imc_sim.units import format_time, parse_times

TARGET = 0.05  # the target: relative difference of the two relative errors
RESOLVED = 3.0  # a difference beyond this many standard errors is not Monte-Carlo noise


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n); 0 for one value)."""
    summary = SeedSummary.of(values)
    return summary.mean, summary.std / len(values) ** 0.5


def ratio_se(a: float, se_a: float, b: float, se_b: float) -> float:
    """Standard error of a / b for independent a, b (first order)."""
    return abs(a / b) * ((se_a / a) ** 2 + (se_b / b) ** 2) ** 0.5


@dataclass(frozen=True)
class Setting:
    """One comparison: a profile, read right after programming (``times`` empty) or drifted to
    each of ``times`` (s) from one programming per chip."""

    name: str
    profile: DeviceProfile
    times: tuple[float, ...] = ()

    def labels(self) -> list[str]:
        return [f"{self.name} @ {format_time(t)}" for t in self.times] or [self.name]


@dataclass(frozen=True)
class LayerError:
    """The relative output error of one layer under one setting, per chip, for each simulator."""

    setting: str
    layer: str
    imc: tuple[float, ...]
    aihwkit: tuple[float, ...]

    @property
    def imc_mean(self) -> float:
        return mean_and_se(self.imc)[0]

    @property
    def aihwkit_mean(self) -> float:
        return mean_and_se(self.aihwkit)[0]

    @property
    def rel_diff(self) -> float:
        """(e_imc - e_aihwkit) / e_aihwkit, chip means."""
        return self.imc_mean / self.aihwkit_mean - 1.0

    @property
    def rel_diff_se(self) -> float:
        return ratio_se(*mean_and_se(self.imc), *mean_and_se(self.aihwkit))

    @property
    def disagrees(self) -> bool:
        """Beyond :data:`TARGET` and beyond :data:`RESOLVED` standard errors."""
        return abs(self.rel_diff) > max(TARGET, RESOLVED * self.rel_diff_se)


def without_per_read(profile: DeviceProfile) -> DeviceProfile:
    """``profile`` without per-read weight noise (aihwkit's torch tiles cannot draw it)."""
    if "per_read" not in profile.read_noise:
        return profile
    return dataclasses.replace(profile, read_noise={**profile.read_noise, "per_read": 0.0})


def quiet_device(profile: DeviceProfile, programming: bool = False, drift: bool = False) -> DeviceProfile:
    """A pcm ``profile`` whose programming noise and drift (with its 1/f read noise) are on or off."""
    return dataclasses.replace(
        profile, programming={**profile.programming, "scale": profile.programming["scale"] * programming},
        drift={**profile.drift, "scale": profile.drift["scale"] * drift},
        read_noise={**profile.read_noise, "scale": profile.read_noise["scale"] * drift})


def perfect_periphery(profile: DeviceProfile, **fields: object) -> DeviceProfile:
    """``profile`` with exact converters and no output noise (``fields`` overridden)."""
    exact = {"dac_bits": None, "adc_bits": None, "out_noise": 0.0}
    periphery = dataclasses.replace(profile.periphery, **{**exact, **fields})
    return dataclasses.replace(profile, periphery=periphery)


def default_settings(times: str = "1h,1d,1y") -> list[Setting]:
    """pcm (per-read noise off), one effect at a time, then all of them together; then pcm-chip
    (aihwkit's CustomDriftPCMLikeNoiseModel, 256 x 256 tiles, static ranges) with one device pair
    per weight and no per-read noise."""
    pcm = without_per_read(load_profile("pcm"))
    chip = dataclasses.replace(without_per_read(load_profile("pcm-chip")), devices_per_weight=1)
    drift_times = tuple(parse_times(times))
    adc_only = dataclasses.replace(pcm.periphery, out_noise=0.0)
    static = dataclasses.replace(pcm.periphery, input_range="static", noise_management="none")
    return [
        Setting("DAC+ADC", dataclasses.replace(quiet_device(pcm), periphery=adc_only)),
        Setting("static ranges, DAC+ADC, output noise",
                dataclasses.replace(quiet_device(pcm), periphery=static)),
        Setting("output noise", perfect_periphery(quiet_device(pcm), out_noise=pcm.periphery.out_noise)),
        Setting("programming noise", perfect_periphery(quiet_device(pcm, programming=True))),
        Setting("programming+drift+compensation", perfect_periphery(pcm), drift_times),
        Setting("pcm, all but per-read", pcm, drift_times),
        Setting("pcm-chip, 1 device pair, all but per-read", chip, drift_times),
    ]


def capture_inputs(model: nn.Module, names: Sequence[str], batches: Sequence[dict], rows: int,
                   seed: int = 0) -> dict[str, Tensor]:
    """Each layer's inputs on ``batches`` (real tokens only, attention mask 1): ``rows`` of them
    drawn without replacement (generator seeded with ``seed``), [rows, in_features]."""
    seen: dict[str, list[Tensor]] = {name: [] for name in names}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda _module, args, _out, name=name: seen[name].append(args[0].detach()))
        for name in names]
    try:
        with torch.no_grad():
            for batch in batches:
                model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        for hook in hooks:
            hook.remove()
    masks = [batch["attention_mask"].bool() for batch in batches]
    out = {}
    for name, xs in seen.items():
        x = torch.cat([x[mask] for x, mask in zip(xs, masks, strict=True)])
        keep = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:rows]
        out[name] = x[keep.sort().values].float()
    return out


def relative_error(y: Tensor, y_digital: Tensor) -> float:
    return float((y - y_digital).norm() / y_digital.norm())


@torch.no_grad()
def imc_errors(linear: nn.Linear, name: str, x: Tensor, setting: Setting,
               seeds: Sequence[int]) -> list[list[float]]:
    """imc-sim's relative error per label of ``setting`` and chip: [labels][chips]."""
    y_digital = linear(x)
    layer = CrossbarLinear(linear, setting.profile, build_family(setting.profile))
    if layer.static_ranges:
        layer.begin_calibration()
        layer(x)
        layer.end_calibration()
    errors: list[list[float]] = [[] for _ in setting.labels()]
    for seed in seeds:
        streams = ChipStreams(seed)
        layer.program(streams, name)
        if not setting.times:
            errors[0].append(relative_error(layer(x), y_digital))
        for k, t in enumerate(setting.times):
            layer.drift(t, streams, name)
            errors[k].append(relative_error(layer(x), y_digital))
    return errors


def aihwkit_tiles(linear: nn.Linear, profile: DeviceProfile,
                  x: Tensor) -> list[tuple[int, int, TorchInferenceTile]]:
    """(first input, first output, tile) of the same fixed cut imc-sim makes; with static input
    ranges, each tile's fixed ``input_range`` is its row tile's range calibrated on ``x``."""
    p = profile.periphery
    if p.tile_split != "fixed":
        raise ImcSimError(f"the aihwkit reference cuts fixed tiles; profile {profile.name} asks "
                          f"for tile_split {p.tile_split}")
    config, w = build_rpu_config(profile), linear.weight.detach()
    ranges = None
    if p.input_range == "static":
        calibration = Calibration(p.tile_rows, p.input_percentile)
        calibration.add(x)
        ranges = calibration.ranges()
        config.pre_post.input_range.enable = True
        config.pre_post.input_range.learn_input_range = False
        config.pre_post.input_range.init_from_data = 0
    tiles = []
    for r0 in range(0, w.shape[1], p.tile_rows):
        for c0 in range(0, w.shape[0], p.tile_cols):
            block = w[c0 : c0 + p.tile_cols, r0 : r0 + p.tile_rows]
            tile = TorchInferenceTile(block.shape[0], block.shape[1], rpu_config=config)
            tile.set_weights(block)
            if ranges is not None:
                tile.set_input_range(float(ranges[r0 // p.tile_rows]))
            tile.eval()
            tiles.append((r0, c0, tile))
    return tiles


@torch.no_grad()
def aihwkit_errors(linear: nn.Linear, name: str, x: Tensor, setting: Setting,
                   seeds: Sequence[int]) -> list[list[float]]:
    """aihwkit's relative error per label and chip: [labels][chips] (chip s of layer ``name``:
    torch's global generator seeded with ``stable_seed(s, name)``, its state restored afterwards)."""
    y_digital = linear(x)
    tiles = aihwkit_tiles(linear, setting.profile, x)

    def read() -> float:
        y = linear.bias.detach().expand(x.shape[0], -1).clone()
        for r0, c0, tile in tiles:
            y[:, c0 : c0 + tile.out_size] += tile(x[:, r0 : r0 + tile.in_size])
        return relative_error(y, y_digital)

    errors: list[list[float]] = [[] for _ in setting.labels()]
    for seed in seeds:
        with torch.random.fork_rng():
            torch.manual_seed(stable_seed(seed, name, "aihwkit"))
            for _, _, tile in tiles:
                tile.program_weights()
            if not setting.times:
                errors[0].append(read())
            for k, t in enumerate(setting.times):
                for _, _, tile in tiles:
                    tile.drift_weights(t)
                errors[k].append(read())
    return errors


def compare_layers(model: nn.Module, inputs: dict[str, Tensor], settings: Sequence[Setting],
                   seeds: Sequence[int]) -> list[LayerError]:
    """Every (setting label, layer) pair of ``inputs``' layers, both simulators on ``seeds``."""
    out = []
    for setting in settings:
        per_layer = []
        for name, x in inputs.items():
            linear = model.get_submodule(name)
            ours = imc_errors(linear, name, x, setting, seeds)
            theirs = aihwkit_errors(linear, name, x, setting, seeds)
            per_layer.append([LayerError(label, name, tuple(a), tuple(b))
                              for label, a, b in zip(setting.labels(), ours, theirs, strict=True)])
        out += [row for by_label in zip(*per_layer, strict=True) for row in by_label]
    return out


@dataclass(frozen=True)
class SettingSummary:
    """One setting label over all layers: the mean over layers of each side's error, their
    relative difference and its standard error, the largest per-layer |difference|, how many
    layers agree within :data:`TARGET` and how many disagree: beyond :data:`TARGET` and beyond
    :data:`RESOLVED` standard errors (not Monte-Carlo noise)."""

    setting: str
    imc: float
    aihwkit: float
    rel_diff: float
    rel_diff_se: float
    worst_layer: str
    worst_rel_diff: float
    within: int
    disagree: int
    layers: int

    @classmethod
    def of(cls, rows: Sequence[LayerError]) -> SettingSummary:
        n = len(rows)
        imc, ref = sum(r.imc_mean for r in rows) / n, sum(r.aihwkit_mean for r in rows) / n
        imc_se = sum(mean_and_se(r.imc)[1] ** 2 for r in rows) ** 0.5 / n
        ref_se = sum(mean_and_se(r.aihwkit)[1] ** 2 for r in rows) ** 0.5 / n
        worst = max(rows, key=lambda r: abs(r.rel_diff))
        return cls(rows[0].setting, imc, ref, imc / ref - 1.0, ratio_se(imc, imc_se, ref, ref_se),
                   worst.layer, worst.rel_diff, sum(abs(r.rel_diff) <= TARGET for r in rows),
                   sum(r.disagrees for r in rows), n)


def summarize(errors: Sequence[LayerError]) -> list[SettingSummary]:
    labels = list(dict.fromkeys(e.setting for e in errors))
    return [SettingSummary.of([e for e in errors if e.setting == label]) for label in labels]


def format_summary_table(summaries: Sequence[SettingSummary], markdown: bool = False) -> str:
    rows = [[s.setting, f"{100 * s.imc:.3f}", f"{100 * s.aihwkit:.3f}",
             f"{100 * s.rel_diff:+.2f} +- {100 * s.rel_diff_se:.2f}",
             f"{100 * s.worst_rel_diff:+.2f} ({s.worst_layer})", f"{s.within}/{s.layers}",
             f"{s.disagree}/{s.layers}"] for s in summaries]
    return format_table(["setting", "imc-sim error % (mean over layers)", "aihwkit error %",
                         "rel. diff % (+- se)", "worst layer rel. diff %",
                         f"layers within {100 * TARGET:.0f}%",
                         f"layers beyond {100 * TARGET:.0f}% and {RESOLVED:g} se"], rows, markdown)
