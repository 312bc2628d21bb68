"""From Gaussian noise to a chip in steps: which part of a device's noise takes away the gain that
StochGRASP shows under Gaussian noise (issue 16)?

The same checkpoints as experiments/noise_regime.py (drift_pcm's grasp-w-k64 and stochgrasp-gauss,
training seeds 0..2, merged) are evaluated at a device and drift time under four noises, each a
step closer to the chip:

1. uniform Gaussian: every weight w + sigma eps with one sigma (Fig. 6), at the sigma that costs
   grasp-w what the step's noise costs it (read off fig6_gaussian's curves, as noise_regime does);
2. shaped Gaussian: w + s_w eps, s_w the std of weight w's error over the device's chips (the
   ``--chips`` chips at that time; error_structure.py's definition): the device's spread, where it
   lands (by layer, column, conductance), but Gaussian, independent and zero-mean;
3. chip weights: the weights a chip holds at that time (programmed, drifted, compensated) in the
   digital model: everything the device does to the weights, but an ideal periphery;
4. the chip: drift_pcm's deployment (per-read and output noise, converters on top).

For each step the gap StochGRASP - grasp-w, paired (the same eps, the same chips) and tested over
training seeds; beside it the gap uniform Gaussian noise predicts at the same damage to grasp-w.

    python experiments/gap_decomposition.py --data-dir ../shared/data/glue   # after noise_regime

Time on one CPU thread (measured, beside a 2-worker Ray run): about 80 s per point, arm and
training seed (10 chips, 5 shaped draws, 5 chip evaluations); the defaults about 24 min.
Writes results/gap_decomposition-full.{json,png} and its table into docs/results.md.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, checkpoint_name, publish_rows  # noqa: E402
from drift_pcm import profile_reference  # noqa: E402
from error_structure import Moments, digital_weights  # noqa: E402
from noise_regime import DET, STOCH, GaussianCurves, device_points  # noqa: E402
from paired import PairedStats  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from tqdm import tqdm  # noqa: E402

from imc_sim import data  # noqa: E402
from imc_sim.atomic import write_atomic  # noqa: E402
from imc_sim.cli import OneLineParser, run_script  # noqa: E402
from imc_sim.cli.numbers import file_stem, int_at_least, names, positive_int  # noqa: E402
from imc_sim.crossbar.mapping import deploy_model  # noqa: E402
from imc_sim.deploy.chip import Chip  # noqa: E402
from imc_sim.deploy.run import Scored, load_scored  # noqa: E402
from imc_sim.devices.profile import load_profile  # noqa: E402
from imc_sim.errors import ImcSimError  # noqa: E402
from imc_sim.peft.targets import weight_in_out  # noqa: E402
from imc_sim.units import parse_times  # noqa: E402

STEPS = ("shaped Gaussian", "chip weights", "chip")


@dataclass(frozen=True)
class Step:
    """One step at one device point: grasp-w's accuracy under it (pooled), the equivalent uniform
    sigma and the gap it predicts, and the gap measured (over training seeds)."""

    device: str
    label: str
    step: str
    det_accuracy: float
    sigma_eq: float | None
    predicted_gap: float | None
    measured: PairedStats

    def row(self) -> list[str]:
        eq = "beyond the curve" if self.sigma_eq is None else f"{self.sigma_eq:.4f}"
        predicted = "n/a" if self.predicted_gap is None else f"{100 * self.predicted_gap:+.2f}"
        m = self.measured
        p = "n/a" if m.p is None else f"{m.p:.2g}"
        return [self.device, self.label, self.step, f"{100 * self.det_accuracy:.2f}", eq, predicted,
                f"{100 * m.mean:+.2f} +- {100 * m.std:.2f} (p {p})"]


@contextmanager
def held_weights(layers: dict[str, nn.Module]) -> Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]:
    """The digital layers' weights [out, in] to overwrite and a copy of them as they were; the
    copy is put back on leaving."""
    saved = {name: weight_in_out(m).detach().T.clone() for name, m in layers.items()}
    try:
        yield {name: weight_in_out(m).detach().T for name, m in layers.items()}, saved
    finally:
        for name, m in layers.items():
            weight_in_out(m).detach().copy_(saved[name].T)


def chip_errors(scored: Scored, device: str, t_seconds: float, chips: int, kept: int) -> tuple[
        dict[str, Tensor], list[dict[str, Tensor]]]:
    """On chips 0..chips-1 of ``device`` at ``t_seconds``: each weight's error std over the chips,
    and the weights of the first ``kept`` chips; the model is digital again afterwards."""
    deployment = deploy_model(scored.loaded.model, load_profile(profile_reference(device)))
    sums = {name: Moments.zeros(w) for name, w in digital_weights(deployment).items()}
    held = []
    for seed in range(chips):
        chip = Chip(deployment, seed)
        chip.drift_to(t_seconds)
        weights = {name: layer.weight_in_layer_units() for name, layer in deployment.layers.items()}
        for name, w in weights.items():
            sums[name].add(w)
        if seed < kept:
            held.append({name: w.clone() for name, w in weights.items()})
    deployment.use_analog(())
    return {name: m.mean_and_variance(chips)[1].sqrt().float() for name, m in sums.items()}, held


def evaluate_steps(scored: Scored, device: str, t_seconds: float, chips: int, draws: int
                   ) -> dict[str, list[float]]:
    """The accuracy of ``scored`` under the shaped Gaussian (noise draws 0..draws-1) and with the
    weights of chips 0..draws-1 (one value each)."""
    spread, held = chip_errors(scored, device, t_seconds, chips, draws)
    layers = {name: scored.loaded.model.get_submodule(name) for name in spread}
    out: dict[str, list[float]] = {"shaped Gaussian": []}
    with held_weights(layers) as (weights, base):

        def measured_with(new: dict[str, Tensor]) -> float:
            for name, w in weights.items():
                w.copy_(new[name])
            return scored.measure()

        for k in range(draws):
            gen = torch.Generator(device=next(iter(base.values())).device).manual_seed(k)
            noisy = {n: w + spread[n] * torch.randn(w.shape, generator=gen, device=w.device)
                     for n, w in base.items()}
            out["shaped Gaussian"].append(measured_with(noisy))
        out["chip weights"] = [measured_with(chip) for chip in held]
    return out


def step_rows(device: str, label: str, values: dict[str, dict[int, dict[str, list[float]]]],
              curves: GaussianCurves) -> list[Step]:
    """The steps measured here at one device point: ``values[arm][seed][step]``."""
    rows = []
    for step in STEPS[:2]:
        det = statistics.fmean(v for s in values[DET].values() for v in s[step])
        sigma, predicted = curves.at_damage(det)
        gaps = [statistics.fmean(a - b for a, b in zip(values[STOCH][s][step], values[DET][s][step],
                                                        strict=True))
                for s in sorted(values[DET])]
        rows.append(Step(device, label, step, det, sigma, predicted, PairedStats.of(gaps)))
    return rows


def plot(rows: list[Step], path_name: str) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for device in dict.fromkeys(f"{r.device} @ {r.label}" for r in rows):
        mine = [r for r in rows if f"{r.device} @ {r.label}" == device]
        x = range(len(mine))
        means, stds = [100 * r.measured.mean for r in mine], [100 * r.measured.std for r in mine]
        line = ax.errorbar(list(x), means, stds, fmt="o-", capsize=3, label=f"{device}: measured")
        predicted = [(i, 100 * r.predicted_gap) for i, r in zip(x, mine, strict=True)
                     if r.predicted_gap is not None]
        ax.plot([i for i, _ in predicted], [p for _, p in predicted], "x--", color=line[0].get_color(),
                label=f"{device}: uniform Gaussian at the same damage")
    ax.set_xticks(range(len(STEPS)), list(STEPS))
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel="StochGRASP - grasp-w (points)", title="From Gaussian noise to the chip, step by step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    write_atomic(RESULTS / f"{path_name}.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--points", type=names, default=("pcm@1d", "reram@1d", "pcm-noise3@1d"),
                        help="device@time, ...")
    parser.add_argument("--chips", type=int_at_least(2), default=10,
                        help="chips that set each weight's spread")
    parser.add_argument("--draws", type=positive_int, default=5,
                        help="shaped-noise draws and chips evaluated")
    parser.add_argument("--train-seeds", type=positive_int, default=3)
    parser.add_argument("--fig6", type=file_stem, default="fig6_gaussian-full-wide")
    parser.add_argument("--label", type=file_stem, default="replicated",
                        help="drift_pcm's --label of the device runs")
    args = parser.parse_args()
    if args.draws > args.chips:
        raise ImcSimError(f"--draws ({args.draws}) must be at most --chips ({args.chips})")
    points = []
    for point in args.points:
        device, _, time = point.partition("@")
        if not time:
            raise ImcSimError(f"--points: {point!r} is not device@time")
        points.append((device, time, parse_times(time)[0]))
    curves = GaussianCurves.read(args.fig6)
    measured = {}  # every input read and checked before the first evaluation
    for device, label, _ in points:
        load_profile(profile_reference(device))
        chip_step = {p.label: p for p in device_points(device, args.label, curves)}
        if label not in chip_step:
            raise ImcSimError(f"drift_{device}-full-{args.label} has no time {label}")
        measured[device, label] = chip_step[label]
    checkpoints = {(arm, seed): RESULTS / "checkpoints" / f"{checkpoint_name(arm, seed, 'full')}.pt"
                   for arm in (DET, STOCH) for seed in range(args.train_seeds)}
    missing = [path for path in checkpoints.values() if not path.exists()]
    if missing:
        raise ImcSimError(f"{missing[0]} not found: run experiments/drift_pcm.py first")
    source = data.DataSource(data_dir=args.data_dir)
    rows: list[Step] = []
    for device, label, t_seconds in points:
        values: dict[str, dict[int, dict[str, list[float]]]] = {DET: {}, STOCH: {}}
        for arm in (DET, STOCH):
            for seed in tqdm(range(args.train_seeds), desc=f"{device} @ {label}, {arm}"):
                values[arm][seed] = evaluate_steps(load_scored(checkpoints[arm, seed], source, None), device,
                                                   t_seconds, args.chips, args.draws)
        full = measured[device, label]
        rows += step_rows(device, label, values, curves)
        rows.append(Step(device, label, "chip", full.det_accuracy, full.sigma_eq, full.predicted_gap,
                         full.measured))
    name = "gap_decomposition-full"
    payload = {"experiment": "gap_decomposition", "fig6": args.fig6, "chips": args.chips, "draws": args.draws,
               "train_seeds": args.train_seeds, "rows": [asdict(r) for r in rows]}
    publish_rows(name, payload, ["device", "time", "noise", "grasp-w under it", "equivalent uniform sigma",
                                 "gap uniform Gaussian predicts", "gap measured (over training seeds)"],
                 [r.row() for r in rows])
    plot(rows, name)


if __name__ == "__main__":
    run_script(main)
