"""Paper Fig. 3b on MiniLM-L6 / SST-2: GRASP accuracy and parameters for K in {8, 16, 32, 64, 128},
clean (digital) and deployed on pcm at 1 d (--seeds chips each).

    python experiments/k_tradeoff.py --data-dir ../shared/data/glue            # full
    python experiments/k_tradeoff.py --data-dir ../shared/data/glue --quick    # smoke run

Time on 2 CPU cores (measured): full about 25 min (5 trainings of about 4 min, 50 realizations of
about 3 s; drift_pcm's K=32 checkpoint is reused when cached), --quick about 5 min.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import (  # noqa: E402
    RESULTS,
    apply_quick,
    common_parser,
    compare_on_device,
    train_arms,
    write_results_section,
)

from imc_sim.atomic import write_atomic  # noqa: E402
from imc_sim.checkpoint import read_checkpoint  # noqa: E402
from imc_sim.cli import run_script  # noqa: E402
from imc_sim.table import format_table  # noqa: E402

KS = (8, 16, 32, 64, 128)


def main() -> None:
    args = common_parser(__doc__.splitlines()[0]).parse_args()
    tag = apply_quick(args)
    arms = {f"grasp-k{k}": {"method": "grasp", "method_options": {"k": k}} for k in KS}
    paths = train_arms(arms, args, tag)
    command = "python experiments/k_tradeoff.py " + " ".join(sys.argv[1:])
    result = compare_on_device(f"k_tradeoff_pcm-{tag}", paths, "pcm", "1d", args, command)
    params = [read_checkpoint(p)["metrics"]["trainable_params"] for p in paths]
    at_1d = [c.points[0] for c in result.checkpoints]
    digital = [100 * c.digital_metric for c in result.checkpoints]
    rows = [[k, n, f"{d:.2f}", f"{100 * p.mean:.2f} +- {100 * p.std:.2f}"]
            for k, n, d, p in zip(KS, params, digital, at_1d, strict=True)]
    table = format_table(["K", "trainable params", "digital acc %", "pcm @ 1d acc %"], rows, markdown=True)
    print(table)
    name = f"k_tradeoff-{tag}"
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(params, digital, "o-", label="digital")
    ax.errorbar(params, [100 * p.mean for p in at_1d], yerr=[100 * p.std for p in at_1d], marker="s",
                capsize=3, label="pcm @ 1 d")
    for k, n, d in zip(KS, params, digital, strict=True):
        ax.annotate(f"K={k}", (n, d), textcoords="offset points", xytext=(4, 4))
    ax.set(xscale="log", xlabel="trainable parameters (head excluded)", ylabel="SST-2 dev accuracy (%)",
           title=f"GRASP K trade-off ({args.steps} steps, {args.seeds} seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    write_atomic(RESULTS / f"{name}.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    write_results_section(name, command, table)


if __name__ == "__main__":
    run_script(main)
