"""Fidelity: imc-sim against aihwkit layer by layer, the pcm -> pcm-chip ablation, the fit round trip.

One GRASP K = 32 checkpoint (packaged MiniLM-L6, SST-2, --steps steps, seed 0; cached under
results/checkpoints/):

(a) layers: every analog layer on its real inputs (--rows token vectors from the first --batches
    dev batches), imc-sim's relative output error ||y - y_d|| / ||y_d|| against aihwkit 1.1.0's
    TorchInferenceTile with the same settings, --layer-chips chips each
    (:mod:`fidelity_layers`; per-read noise is not compared: aihwkit's torch tiles refuse it);
(b) ablation: pcm -> static input ranges -> + per-read noise -> + devices per weight -> + faults,
    pcm-chip's values, SST-2 dev accuracy at --times on --seeds chips, each step's cost
    (:mod:`fidelity_ablation`);
(c) fit: 10,000 devices drawn from pcm and from pcm-chip, fitted back, each parameter's relative
    error (:mod:`fidelity_fit`);
(d) --arms: grasp-k32, grasp-w-pcm-chip-warm and stochgrasp-pcm-chip-warm (drift_pcm.py's arms:
    the matched pair trained against pcm-chip, its static input ranges calibrated at the end of
    the warm-up) on pcm-chip beside pcm, one training seed (drift_pcm.py --devices pcm-chip
    replicates it over training seeds).

    python experiments/fidelity.py --data-dir ../shared/data/glue            # (a)-(c)
    python experiments/fidelity.py --data-dir ../shared/data/glue --quick    # smoke run
    python experiments/fidelity.py --data-dir ../shared/data/glue --arms     # (a)-(d)

Writes results/fidelity-<full|quick>.json and .png and a docs/results.md section.

Time on 2 CPU cores shared with other jobs (load about 7, one torch thread; measured): --quick
3.8 min with its checkpoint cached ((a) 49 s, (b) 2.9 min; training its 100 steps adds about
1 min, the default's 300 steps 2.5 min). The default run is not measured: about 75 realizations
of the 872-sentence dev set in (b) (about 3 s each on a quiet machine, drift_pcm.py) and (a) about
5x --quick's, so about 10 min on a quiet machine, longer on a busy one. On a shared machine run
with OMP_NUM_THREADS=1: two threads per process oversubscribe the cores (training measured at
5-13 s per step against 0.4 s with one thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import RESULTS, common_parser, compare_on_device, train_arms, write_json, write_results_section  # noqa: E402
from drift_pcm import ARMS  # noqa: E402
from fidelity_ablation import StepResult, format_ablation_table, run_ablation, step_costs  # noqa: E402
from fidelity_fit import MIN_FIT_DEVICES, FittedParameter, format_fit_table, round_trip  # noqa: E402
from fidelity_layers import (  # noqa: E402
    LayerError,
    capture_inputs,
    compare_layers,
    default_settings,
    format_summary_table,
    summarize,
)

from imc_sim.atomic import write_atomic  # noqa: E402
from imc_sim.checkpoint import load_model  # noqa: E402
from imc_sim.cli import run_script  # noqa: E402
from imc_sim.cli.numbers import int_at_least, positive_int  # noqa: E402
from imc_sim.crossbar.mapping import analog_layer_names  # noqa: E402
from imc_sim.data import DataSource  # noqa: E402
from imc_sim.deploy.run import dev_set  # noqa: E402
from imc_sim.table import format_table  # noqa: E402
from imc_sim.units import parse_times  # noqa: E402

ARM_NAMES = ("grasp-k32", "grasp-w-pcm-chip-warm", "stochgrasp-pcm-chip-warm")
FIT_TRUTHS = ("pcm", "pcm-chip")


def parse_args() -> argparse.Namespace:
    parser = common_parser(__doc__.splitlines()[0])
    parser.set_defaults(steps=300, seeds=5)
    parser.add_argument("--layer-chips", type=positive_int, default=5, help="chips per layer comparison (a)")
    parser.add_argument("--rows", type=positive_int, default=256, help="input vectors per layer (a)")
    parser.add_argument("--batches", type=positive_int, default=2, help="dev batches of the inputs (a)")
    parser.add_argument("--times", default="1h,1d,1y", help="drift times of (a), (b) and (d)")
    parser.add_argument("--fit-devices", type=int_at_least(MIN_FIT_DEVICES), default=10_000,
                        help="devices of the round trip (c)")
    parser.add_argument("--arms", action="store_true",
                        help="(d): train " + ", ".join(ARM_NAMES) + "; deploy on pcm-chip and pcm")
    args = parser.parse_args()
    parse_times(args.times)  # before any training
    return args


def apply_quick(args: argparse.Namespace) -> str:
    """Shrink the run for --quick (and say so); returns the tag of the result files."""
    if not args.quick:
        return "full"
    args.steps, args.seeds, args.eval_limit = min(args.steps, 100), min(args.seeds, 2), 200
    args.layer_chips, args.rows, args.batches, args.times = min(args.layer_chips, 2), 64, 1, "1d"
    print(f"--quick: {args.steps} steps, {args.seeds} chips on 200 dev examples, {args.layer_chips} "
          "chips x 64 inputs per layer, 1d only; not the protocol")
    return "quick"


def layer_errors(path: Path, args: argparse.Namespace) -> list[LayerError]:
    """(a) on the checkpoint at ``path``."""
    loaded = load_model(path)
    batches, _ = dev_set(loaded, DataSource(data_dir=args.data_dir), args.eval_limit)
    names = analog_layer_names(loaded.model)
    inputs = capture_inputs(loaded.model, names, batches[: args.batches], args.rows)
    return compare_layers(loaded.model, inputs, default_settings(args.times), range(args.layer_chips))


def per_layer_table(errors: list[LayerError], markdown: bool = False) -> str:
    """Rows: layers; columns: each setting's (e_imc - e_aihwkit) / e_aihwkit in %, +- its standard
    error."""
    settings = list(dict.fromkeys(e.setting for e in errors))
    layers = list(dict.fromkeys(e.layer for e in errors))
    by = {(e.setting, e.layer): e for e in errors}
    rows = [[layer, *(f"{100 * by[s, layer].rel_diff:+.1f} +- {100 * by[s, layer].rel_diff_se:.1f}"
                      for s in settings)] for layer in layers]
    return format_table(["layer (rel. diff % +- se)", *settings], rows, markdown)


def fit_summary_table(rows: list[FittedParameter], markdown: bool = False) -> str:
    """The largest |relative error| over levels, per truth profile and parameter."""
    keys = list(dict.fromkeys((r.profile, r.parameter) for r in rows))
    worst = [max((r for r in rows if (r.profile, r.parameter) == key), key=lambda r: abs(r.rel_error))
             for key in keys]
    cells = [[r.profile, r.parameter, f"{100 * r.rel_error:+.2f}",
              "all" if r.g is None else f"{r.g:.3g}"] for r in worst]
    return format_table(["truth", "parameter", "worst rel. error %", "at level g (uS)"], cells, markdown)


def payload(name: str, args: argparse.Namespace, path: Path, errors: list[LayerError],
            ablation: list[StepResult], fit: list[FittedParameter]) -> dict:
    costs = step_costs(ablation)
    return {
        "name": name, "quick": args.quick, "steps": args.steps, "checkpoint": str(path),
        "layers": {"chips": args.layer_chips, "rows": args.rows, "batches": args.batches,
                   "summary": [dataclasses.asdict(s) for s in summarize(errors)],
                   "errors": [{**dataclasses.asdict(e), "imc_mean": e.imc_mean,
                               "aihwkit_mean": e.aihwkit_mean, "rel_diff": e.rel_diff,
                               "rel_diff_se": e.rel_diff_se} for e in errors]},
        "ablation": {"seeds": args.seeds, "eval_limit": args.eval_limit, "steps": [
            {"step": r.step, "profile": r.profile, "digital": r.digital,
             "times": [p.to_json() for p in r.points],
             "cost": [None if c is None else c.to_json() for c in cost]}
            for r, cost in zip(ablation, costs, strict=True)]},
        "fit": [{**dataclasses.asdict(r), "rel_error": r.rel_error} for r in fit],
    }


def plot(name: str, errors: list[LayerError], ablation: list[StepResult], fit: list[FittedParameter]) -> None:
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(17, 4.8))
    for setting in dict.fromkeys(e.setting for e in errors):
        rows = [e for e in errors if e.setting == setting]
        ax_a.plot([100 * e.aihwkit_mean for e in rows], [100 * e.imc_mean for e in rows], "o", ms=3,
                  label=setting)
    lo, hi = ax_a.get_xlim()
    ax_a.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax_a.set(xscale="log", yscale="log", xlabel="aihwkit relative error (%)",
             ylabel="imc-sim relative error (%)", title="(a) per layer, same inputs and settings")
    ax_a.legend(fontsize=6)
    steps = range(len(ablation))
    for k, point in enumerate(ablation[0].points):
        ax_b.errorbar(steps, [100 * r.points[k].mean for r in ablation], marker="o", capsize=3,
                      yerr=[100 * r.points[k].std for r in ablation], label=point.label)
    ax_b.set_xticks(list(steps), [r.step.split(" (")[0] for r in ablation], rotation=20, ha="right",
                    fontsize=7)
    ax_b.set(ylabel="SST-2 dev accuracy (%)", title="(b) pcm -> pcm-chip effects, cumulative")
    ax_b.legend()
    params = list(dict.fromkeys((r.profile, r.parameter) for r in fit))
    for i, key in enumerate(params):
        values = [100 * abs(r.rel_error) for r in fit if (r.profile, r.parameter) == key]
        ax_c.plot([i] * len(values), values, "o", ms=4)
    ax_c.axhline(10, color="r", lw=0.8)
    ax_c.set_xticks(range(len(params)), [f"{p}\n{q}" for p, q in params], rotation=30, ha="right", fontsize=7)
    ax_c.set(ylabel="|fitted / truth - 1| (%)", title="(c) devices fit round trip, per level")
    for ax in (ax_a, ax_b, ax_c):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    write_atomic(RESULTS / f"{name}.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def main() -> None:
    args = parse_args()
    tag = apply_quick(args)
    command = "python experiments/fidelity.py " + " ".join(sys.argv[1:])
    name = f"fidelity-{tag}"
    (path,) = train_arms({"grasp-k32": ARMS["grasp-k32"]}, args, f"{args.steps}steps")
    start = time.perf_counter()
    errors = layer_errors(path, args)
    print(f"(a) {time.perf_counter() - start:.0f} s")
    layer_tables = [format_summary_table(summarize(errors), markdown=True), per_layer_table(errors, True)]
    print("\n\n".join(layer_tables))
    start = time.perf_counter()
    ablation = run_ablation(path, parse_times(args.times), args.seeds, args.data_dir, args.eval_limit)
    print(f"(b) {time.perf_counter() - start:.0f} s")
    ablation_table = format_ablation_table(ablation, markdown=True)
    print(ablation_table)
    fit = [row for truth in FIT_TRUTHS for row in round_trip(truth, args.fit_devices)]
    print(format_fit_table(fit))
    write_json(name, payload(name, args, path, errors, ablation, fit))
    plot(name, errors, ablation, fit)
    sections = ["(a) imc-sim against aihwkit per layer (per-read noise off: aihwkit's torch tiles refuse "
                f"it), {args.layer_chips} chips, {args.rows} inputs per layer", *layer_tables,
                f"(b) ablation on {args.seeds} chips", ablation_table,
                f"(c) devices fit round trip, {args.fit_devices} devices", fit_summary_table(fit, True)]
    write_results_section(name, command, "\n\n".join(sections))
    if args.arms:
        paths = train_arms({arm: ARMS[arm] for arm in ARM_NAMES}, args, f"{args.steps}steps")
        for device in ("pcm-chip", "pcm"):
            compare_on_device(f"fidelity_arms_{device}-{tag}", paths, device, args.times, args, command)
    print(f"wrote {RESULTS / name}.json and .png")


if __name__ == "__main__":
    run_script(main)
