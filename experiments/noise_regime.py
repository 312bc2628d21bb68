"""Where pcm sits on Fig. 6's noise axis: each device's damage as an equivalent Gaussian sigma, and
the StochGRASP - grasp-w gap it predicts beside the gap measured on the device (issue 16).

The same checkpoints (drift_pcm's arms grasp-w-k64 and stochgrasp-gauss, both trained without a
device, --train-seeds each) are evaluated two ways:
- under Gaussian weight noise sigma (experiments/fig6_gaussian.py, its JSON): accuracy curves
  g_det(sigma), g_stoch(sigma) pooled over training and noise seeds, and the paired gap
  gap(sigma) = StochGRASP - grasp-w averaged over training seeds;
- on devices (experiments/drift_pcm.py, its JSON per device): pcm, pcm with its device noise
  x2 and x3 (pcm-noise2, pcm-noise3), reram, fefet and pcm-chip, at each drift time.
A device at a time damages grasp-w as much as the Gaussian sigma_eq with g_det(sigma_eq) = grasp-w's
accuracy on it (linear interpolation between the measured sigmas; 0 where the device costs less
than the smallest noise, none where it costs more than the largest). If the device's noise acts on
these models as Gaussian weight noise does, the gap measured on it is gap(sigma_eq): the table
sets the two side by side, and the plot draws the device points on the Gaussian gap curve.

    python experiments/noise_regime.py        # after fig6_gaussian --sigmas ... and drift_pcm

Reads results/<fig6>.json and results/drift_<device>-full-<label>.json; writes
results/noise_regime-full.{json,png} and its table into docs/results.md. No training, no
evaluation: seconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import RESULTS, checkpoint_name, fields_of, publish_rows, read_json  # noqa: E402
from paired import PairedStats, compare_arms  # noqa: E402

from imc_sim.atomic import write_atomic  # noqa: E402
from imc_sim.cli import OneLineParser, run_script  # noqa: E402
from imc_sim.cli.numbers import file_stem, names  # noqa: E402
from imc_sim.deploy.results import CheckpointCurve, load_result  # noqa: E402
from imc_sim.errors import ImcSimError  # noqa: E402

DET, STOCH = "grasp-w-k64", "stochgrasp-gauss"


def equivalent_sigma(sigmas: Sequence[float], accuracy: Sequence[float], target: float) -> float | None:
    """The sigma at which the curve ``accuracy``(``sigmas``) (falling, sigmas increasing) first
    reaches ``target``, linearly interpolated; 0 above the curve's start, None below its end."""
    if target >= accuracy[0]:
        return 0.0
    for i in range(len(sigmas) - 1):
        (s0, s1), (a0, a1) = sigmas[i:i + 2], accuracy[i:i + 2]
        if a1 <= target <= a0:
            return s0 + (s1 - s0) * (a0 - target) / (a0 - a1)
    return None


def interpolate(sigmas: Sequence[float], values: Sequence[float], sigma: float) -> float:
    """``values``(``sigmas``) at ``sigma`` (within the range), linearly."""
    for i in range(len(sigmas) - 1):
        (s0, s1), (v0, v1) = sigmas[i:i + 2], values[i:i + 2]
        if s0 <= sigma <= s1:
            return v0 + (v1 - v0) * (sigma - s0) / (s1 - s0)
    raise ValueError(f"sigma {sigma} outside {sigmas[0]}..{sigmas[-1]}")


@dataclass(frozen=True)
class GaussianCurves:
    """fig6_gaussian's result: the sigmas, grasp-w's pooled accuracy and the paired gap per sigma
    (mean and std over training seeds), and the median layer weight std (relative sigma's unit)."""

    sigmas: tuple[float, ...]
    det: tuple[float, ...]
    gap: tuple[float, ...]
    gap_std: tuple[float, ...]
    train_seeds: int
    weight_std: float

    def at_damage(self, det_accuracy: float) -> tuple[float | None, float | None]:
        """The sigma at which grasp-w's Gaussian accuracy is ``det_accuracy`` (:func:`equivalent_sigma`)
        and the gap the Gaussian curves give there (None beyond the curve)."""
        sigma = equivalent_sigma(self.sigmas, self.det, det_accuracy)
        return sigma, None if sigma is None else interpolate(self.sigmas, self.gap, sigma)

    @classmethod
    def read(cls, name: str) -> GaussianCurves:
        path = RESULTS / f"{name}.json"
        raw = read_json(path, "fig6_gaussian")
        if raw.get("sigma_unit") != "weight units" or "comparisons" not in raw:
            raise ImcSimError(f"{path}: needs fig6_gaussian's absolute sigmas over training seeds")
        with fields_of(path, "fig6_gaussian"):
            arms = {a["arm"]: a for a in raw["arms"]}
            if set(arms) != {DET, STOCH}:
                raise ImcSimError(f"{path}: arms {sorted(arms)}, expected {DET} and {STOCH}")
            gaps = raw["comparisons"]
            return cls(tuple(map(float, raw["sigmas"])), tuple(float(p["mean"]) for p in arms[DET]["sigmas"]),
                       tuple(float(c["over_seeds"]["mean"]) for c in gaps),
                       tuple(float(c["over_seeds"]["std"]) for c in gaps), int(raw["train_seeds"]),
                       statistics.median(float(c["median_layer_weight_std"]) for c in raw["checkpoints"]))


@dataclass(frozen=True)
class DevicePoint:
    """One device at one drift time: grasp-w's accuracy there, its equivalent Gaussian sigma, the
    gap the Gaussian curve predicts at that sigma and the gap measured (paired over seeds)."""

    device: str
    label: str
    det_accuracy: float
    sigma_eq: float | None
    predicted_gap: float | None
    measured: PairedStats

    def row(self, weight_std: float) -> list[str]:
        eq = "beyond the curve" if self.sigma_eq is None else \
            f"{self.sigma_eq:.4f} ({self.sigma_eq / weight_std:.2f})"
        predicted = "n/a" if self.predicted_gap is None else f"{100 * self.predicted_gap:+.2f}"
        m = self.measured
        p = "n/a" if m.p is None else f"{m.p:.2g}"
        return [self.device, self.label, f"{100 * self.det_accuracy:.2f}", eq, predicted,
                f"{100 * m.mean:+.2f} +- {100 * m.std:.2f} (p {p})"]


def device_points(device: str, label: str, curves: GaussianCurves) -> list[DevicePoint]:
    """Every drift time of ``device``'s drift_pcm result ``drift_<device>-full-<label>``, over the
    training seeds of ``curves``."""
    train_seeds = curves.train_seeds
    path = RESULTS / f"drift_{device}-full-{label}.json"
    if not path.exists():
        raise ImcSimError(f"{path} not found: run experiments/drift_pcm.py --devices {device} "
                          f"--arms {DET},{STOCH} --label {label}")
    result = load_result(path)
    names = {checkpoint_name(arm, s, "full"): (arm, s) for arm in (DET, STOCH) for s in range(train_seeds)}
    arms: dict[str, dict[int, CheckpointCurve]] = {DET: {}, STOCH: {}}
    for curve in (c for c in result.checkpoints if c.name in names):
        arm, seed = names[curve.name]
        arms[arm][seed] = curve
    if any(len(seeds) != train_seeds for seeds in arms.values()):
        raise ImcSimError(f"{path}: needs {DET} and {STOCH} for training seeds 0..{train_seeds - 1}")
    points = []
    for time in (p.label for p in result.checkpoints[0].points):
        det = statistics.fmean(m for c in arms[DET].values() for m in c.at(time).metrics)
        sigma, predicted = curves.at_damage(det)
        measured = compare_arms(arms[STOCH], arms[DET], STOCH, DET, time).over_seeds
        points.append(DevicePoint(device, time, det, sigma, predicted, measured))
    return points


def plot(curves: GaussianCurves, points: list[DevicePoint], path_name: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    gap = [100 * g for g in curves.gap]
    low = [100 * (g - s) for g, s in zip(curves.gap, curves.gap_std, strict=True)]
    high = [100 * (g + s) for g, s in zip(curves.gap, curves.gap_std, strict=True)]
    ax.plot(curves.sigmas, gap, "k-o", label="Gaussian weight noise (fig6_gaussian)")
    ax.fill_between(curves.sigmas, low, high, color="k", alpha=0.12,
                    label=f"+- std over {curves.train_seeds} training seeds")
    for device in dict.fromkeys(p.device for p in points):
        mine = [p for p in points if p.device == device and p.sigma_eq is not None]
        ax.errorbar([p.sigma_eq for p in mine], [100 * p.measured.mean for p in mine],
                    yerr=[100 * p.measured.std for p in mine], fmt="s", capsize=3,
                    label=f"{device} (measured)")
        for p in mine:
            ax.annotate(p.label, (p.sigma_eq, 100 * p.measured.mean), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="Gaussian weight noise sigma (weight units); devices at their equivalent sigma",
           ylabel="StochGRASP - grasp-w (points)", title="The noise-aware gain against the noise level")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    write_atomic(RESULTS / f"{path_name}.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fig6", type=file_stem, default="fig6_gaussian-full-wide",
                        help="fig6_gaussian's result name")
    parser.add_argument("--devices", type=names,
                        default=("pcm", "pcm-noise2", "pcm-noise3", "reram", "fefet", "pcm-chip"))
    parser.add_argument("--label", type=file_stem, default="replicated",
                        help="drift_pcm's --label of the device runs")
    args = parser.parse_args()
    curves = GaussianCurves.read(args.fig6)
    points = [p for d in args.devices
              for p in device_points(d, args.label, curves)]
    name = "noise_regime-full"
    publish_rows(name, {"experiment": "noise_regime", "fig6": args.fig6, "label": args.label,
                        "gaussian": asdict(curves), "points": [asdict(p) for p in points]},
                 ["device", "time", "grasp-w on it", "equivalent sigma (relative)",
                  "gap predicted by Gaussian", "gap measured (over training seeds)"],
                 [p.row(curves.weight_std) for p in points],
                 "\n\n(gap: StochGRASP - grasp-w in points; equivalent sigma in weight units, relative to "
                 f"the median layer weight std {curves.weight_std:.4f} in brackets)")
    plot(curves, points, name)


if __name__ == "__main__":
    run_script(main)
