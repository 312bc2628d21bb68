"""What a device does to the weights, set beside the Gaussian noise StochGRASP is trained against
(issue 16): how much of each device's weight error every chip shares, how it grows with the
weight's size, and how it compares with the device's equivalent Gaussian sigma.

One checkpoint (by default grasp-w-k64, training seed 0, merged) is programmed on --seeds chips of
each device and read at its drift times. Per analog weight w (the layer's units), chip c holds
w + e_c (programmed, drifted, compensated: ``CrossbarLinear.weight_in_layer_units``; the noise of
each MVM, converters and IR drop are not in it). Over the N chips:

    systematic  s = mean_c e_c                         (what every chip shares)
    random      r_c = e_c - s                          (what differs from chip to chip)
    rms_random^2 = mean_w var_c(e_c)                   (var with N - 1)
    rms_systematic^2 = mean_w s^2 - rms_random^2 / N   (the chips' mean less its own noise)
    gain: s_ij ~ beta_i w_ij fitted per output i; the share of mean s^2 that the gains explain.

Gaussian weight noise, as Fig. 6 injects it, is all random, the same for every weight and every
layer, and nothing else. The table gives each device's random error by the size of the weight
(|w| / the largest |w| of its output: thirds) and its spread over layers, and, where
experiments/noise_regime.py has run, the equivalent Gaussian sigma of the device at that time.

    python experiments/error_structure.py      # after drift_pcm's checkpoints; minutes, no data

Writes results/error_structure-full.{json,png} and its table into docs/results.md.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, fields_of, publish_rows, read_json  # noqa: E402
from drift_pcm import profile_reference  # noqa: E402
from torch import Tensor  # noqa: E402
from tqdm import tqdm  # noqa: E402

from imc_sim.atomic import write_atomic  # noqa: E402
from imc_sim.checkpoint import load_model  # noqa: E402
from imc_sim.cli import OneLineParser, run_script  # noqa: E402
from imc_sim.cli.numbers import int_at_least, names  # noqa: E402
from imc_sim.crossbar.mapping import Deployment, deploy_model  # noqa: E402
from imc_sim.deploy.chip import Chip  # noqa: E402
from imc_sim.devices.profile import load_profile  # noqa: E402
from imc_sim.peft.targets import weight_in_out  # noqa: E402
from imc_sim.units import format_time, parse_times  # noqa: E402

TIMES = {"reram": "1s,1d,2d"}  # aihwkit's reram model ends at 2 d; every other device:
DEFAULT_TIMES = "1h,1d,1y"
THIRDS = ("small", "middle", "large")  # |w| / max |w| of its output in [0, 1/3), [1/3, 2/3), [2/3, 1]


@dataclass(frozen=True)
class ErrorStructure:
    """A device's weight error at one drift time over N chips (rms in weight units)."""

    device: str
    label: str
    chips: int
    rms_total: float
    rms_systematic: float
    rms_random: float
    gain_share: float  # of the systematic mean square, what per-output gains explain
    random_by_size: tuple[float, float, float]  # rms random in the thirds of |w| / max |w|
    random_by_layer: tuple[float, float, float]  # min, median, max of the layers' rms random
    sigma_eq: float | None  # the device's equivalent Gaussian sigma (noise_regime), if known

    def row(self) -> list[str]:
        systematic_share = self.rms_systematic ** 2 / self.rms_total ** 2 if self.rms_total else 0.0
        eq = "not measured" if self.sigma_eq is None else f"{self.sigma_eq:.4f}"
        return [self.device, self.label, f"{self.rms_total:.4f}", f"{self.rms_systematic:.4f}",
                f"{100 * systematic_share:.0f} %", f"{100 * self.gain_share:.0f} %", f"{self.rms_random:.4f}",
                " / ".join(f"{v:.4f}" for v in self.random_by_size),
                " / ".join(f"{v:.4f}" for v in self.random_by_layer), eq]


@dataclass
class Moments:
    """Running sums over chips of one layer's error e (float64): sum e, sum e^2."""

    weight: Tensor
    first: Tensor
    second: Tensor

    @classmethod
    def zeros(cls, weight: Tensor) -> Moments:
        w = weight.double()
        return cls(w, torch.zeros_like(w), torch.zeros_like(w))

    def add(self, held: Tensor) -> None:
        e = held.double() - self.weight
        self.first += e
        self.second += e * e

    def mean_and_variance(self, n: int) -> tuple[Tensor, Tensor]:
        """Each weight's mean error over the ``n`` chips added and its variance (n - 1)."""
        mean = self.first / n
        return mean, ((self.second - n * mean * mean) / (n - 1)).clamp_min(0)


def digital_weights(deployment: Deployment) -> dict[str, Tensor]:
    """Each analog layer's digital weight, [out, in] as its tiles hold it."""
    return {name: weight_in_out(deployment.originals[name]).detach().T.float()
            for name in deployment.layers}


def summarize(device: str, label: str, moments: dict[str, Moments], n: int,
              sigma_eq: float | None) -> ErrorStructure:
    """The :class:`ErrorStructure` of the sums ``moments`` over ``n`` chips (n >= 2)."""
    count = sum(m.weight.numel() for m in moments.values())
    total = systematic = random = explained = 0.0
    by_size = [[0.0, 0] for _ in THIRDS]
    per_layer = []
    for m in moments.values():
        mean, var = m.mean_and_variance(n)
        total += float((m.second / n).sum())
        systematic += float((mean * mean).sum())
        random += float(var.sum())
        w2 = (m.weight * m.weight).sum(dim=1).clamp_min(1e-30)
        explained += float(((mean * m.weight).sum(dim=1) ** 2 / w2).sum())  # sum_i beta_i^2 sum_j w_ij^2
        size = m.weight.abs() / m.weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        third = (size * 3).clamp_max(2.999).long()
        for k in range(len(THIRDS)):
            chosen = var[third == k]
            by_size[k][0] += float(chosen.sum())
            by_size[k][1] += chosen.numel()
        per_layer.append(math.sqrt(float(var.mean())))
    rms_random2 = random / count
    rms_systematic2 = max(systematic / count - rms_random2 / n, 0.0)
    # of the systematic mean square with the chips' noise taken out (the gains' fit keeps one
    # direction of that noise per output: negligible beside a layer's inputs)
    share = min(explained / (count * rms_systematic2), 1.0) if rms_systematic2 > 0 else 0.0
    sizes = tuple(math.sqrt(s / c) if c else 0.0 for s, c in by_size)
    return ErrorStructure(device, label, n, math.sqrt(total / count), math.sqrt(rms_systematic2),
                          math.sqrt(rms_random2), share, sizes,
                          (min(per_layer), statistics.median(per_layer), max(per_layer)), sigma_eq)


def measure(deployment: Deployment, device: str, times: list[float], chips: int,
            sigmas: dict[tuple[str, str], float | None]) -> list[ErrorStructure]:
    """Every time of ``times`` on chips 0..chips-1 of ``deployment`` (programmed once per chip)."""
    weights = digital_weights(deployment)
    sums = {t: {name: Moments.zeros(w) for name, w in weights.items()} for t in times}
    for seed in tqdm(range(chips), desc=f"{device} chips", leave=False):
        chip = Chip(deployment, seed)
        for t in times:
            chip.drift_to(t)
            for name, layer in deployment.layers.items():
                sums[t][name].add(layer.weight_in_layer_units())
    return [summarize(device, format_time(t), sums[t], chips, sigmas.get((device, format_time(t))))
            for t in times]


def equivalent_sigmas() -> dict[tuple[str, str], float | None]:
    """noise_regime's equivalent Gaussian sigma per (device, time), where it has run."""
    path = RESULTS / "noise_regime-full.json"
    if not path.exists():
        return {}
    raw = read_json(path, "noise_regime")
    with fields_of(path, "noise_regime"):
        return {(str(p["device"]), str(p["label"])): None if p["sigma_eq"] is None else float(p["sigma_eq"])
                for p in raw["points"]}


def plot(rows: list[ErrorStructure], path_name: str) -> None:
    fig, ax = plt.subplots(figsize=(max(7.0, 0.55 * len(rows)), 4.5))
    x = range(len(rows))
    width = 0.38
    ax.bar([i - width / 2 for i in x], [r.rms_systematic for r in rows], width, label="shared by every chip")
    ax.bar([i + width / 2 for i in x], [r.rms_random for r in rows], width, label="chip to chip (random)")
    eq = [(i, r.sigma_eq) for i, r in zip(x, rows, strict=True) if r.sigma_eq]
    if eq:
        ax.plot([i for i, _ in eq], [s for _, s in eq], "k_", markersize=18, mew=2,
                label="equivalent Gaussian sigma (noise_regime)")
    ax.set_xticks(list(x), [f"{r.device} {r.label}" for r in rows], fontsize=8, rotation=40, ha="right")
    ax.set(ylabel="rms weight error (weight units)", title="What each device does to the weights")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(RESULTS / f"{path_name}.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(RESULTS / "checkpoints" / "grasp-w-k64-full.pt"))
    parser.add_argument("--model", help="the checkpoint's base model from here instead")
    parser.add_argument("--devices", type=names,
                        default=("pcm", "pcm-noise2", "pcm-noise3", "pcm-chip", "reram", "fefet"))
    parser.add_argument("--seeds", type=int_at_least(2), default=10,
                        help="chips per device (at least 2: the spread over chips)")
    args = parser.parse_args()
    # every device checked before the first is measured
    devices = [(d, load_profile(profile_reference(d)), parse_times(TIMES.get(d, DEFAULT_TIMES)))
               for d in args.devices]
    for _, profile, times in devices:
        profile.check_times(times)
    loaded = load_model(args.checkpoint, args.model)
    sigmas = equivalent_sigmas()
    rows = []
    for device, profile, times in devices:
        deployment = deploy_model(loaded.model, profile)
        rows += measure(deployment, device, times, args.seeds, sigmas)
        deployment.use_analog(())  # the digital model again, for the next device
    name = "error_structure-full"
    publish_rows(name, {"experiment": "error_structure", "checkpoint": args.checkpoint, "chips": args.seeds,
                        "rows": [asdict(r) for r in rows]},
                 ["device", "time", "rms error", "shared by every chip", "of its square", "gains explain",
                  "chip to chip", "by |w| thirds", "over layers (min / median / max)",
                  "equivalent Gaussian sigma"], [r.row() for r in rows])
    plot(rows, name)


if __name__ == "__main__":
    run_script(main)
