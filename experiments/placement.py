"""Placement: the metric against the fraction of weights on the chip, the costliest layers digital.

One checkpoint on one device. The layers are ranked by the one-analog sensitivity map at the first
drift time (what ``imc-sim deploy --keep-digital N`` does), then for N = 0, step, 2 step, ..., L
(every analog layer) the N costliest stay digital and the rest is measured at every drift time on
the same chips (seeds); each chip is programmed once and layers are switched, which gives the
numbers of ``deploy --keep-digital N`` itself. Writes ``results/<name>.json`` (the placement
schema, :mod:`imc_sim.deploy.placement`, with the ranking's sensitivity map), a PNG beside it and
a docs/results.md section.

    python experiments/placement.py --checkpoint experiments/results/checkpoints/grasp-k32-full.pt \\
        --device pcm --drift 1d 1y --seeds 10

Cost: (L + 1) evaluations per seed for the ranking, then (L / step + 2) x drift times per seed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import RESULTS, write_results_section

from imc_sim.cli import OneLineParser, run_script  # noqa: E402
from imc_sim.cli.numbers import file_stem, positive_int
from imc_sim.data import DataSource
from imc_sim.deploy.layer_maps import checkpoint_placement
from imc_sim.deploy.placement import format_placement_table, save_placement
from imc_sim.deploy.sensitivity import format_sensitivity_table
from imc_sim.deploy.sensitivity_plots import plot_placement
from imc_sim.devices.profile import load_profile
from imc_sim.units import parse_times


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="model.pt written by imc-sim train")
    parser.add_argument("--device", default="pcm")
    parser.add_argument("--drift", nargs="+", default=["1d,1y"], metavar="TIME")
    parser.add_argument("--seeds", type=positive_int, default=10)
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--eval-limit", type=positive_int)
    parser.add_argument("--step", type=positive_int, default=4, help="layers made digital per point")
    parser.add_argument("--analog-head", action="store_true")
    parser.add_argument("--name", type=file_stem,
                        help="result files' name (default placement_<device>-<checkpoint stem>)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/results.md alone")
    args = parser.parse_args()
    profile = load_profile(args.device)
    times = parse_times(args.drift)
    name = args.name or f"placement_{profile.name}-{Path(args.checkpoint).stem}"
    result = checkpoint_placement(args.checkpoint, profile, times, args.seeds, args.step,
                                  DataSource(data_dir=args.data_dir), args.eval_limit, args.analog_head)
    save_placement(RESULTS / f"{name}.json", result)
    plot_placement(result, RESULTS / f"{name}.png")
    print(format_sensitivity_table(result.sensitivity, "one-analog"))
    table = format_placement_table(result, markdown=True)
    print(table)
    if not args.no_docs:
        write_results_section(name, "python experiments/placement.py " + " ".join(sys.argv[1:]), table)
    print(f"wrote {RESULTS / name}.json and .png")


if __name__ == "__main__":
    run_script(main)
