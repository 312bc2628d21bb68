"""Drift on realistic devices: deterministic GRASP, StochGRASP (Gaussian- and device-trained),
LoRA and hardware-aware LoRA, deployed on pcm, reram and fefet with the same chips for all.

Arms (packaged MiniLM-L6, SST-2, --steps steps, training seeds 0..--train-seeds - 1):
- grasp-k32: activation-space GRASP, K = 32, all linear layers;
- grasp-w-k64: deterministic weight-space GRASP, K = 64 per row (StochGRASP without sigma);
- stochgrasp-gauss: StochGRASP K = 64 per row, noise-aware loss with sigma_target 0.01 (Gaussian);
- stochgrasp-pcm: the same trained against pcm over 1h..1y, sigma_target auto;
- grasp-w-pcm: grasp-w-k64 trained against pcm over 1h..1y (StochGRASP-pcm with sigma = 0: the
  control that separates the device in the loop from the learned sigma);
- stochgrasp-pcm-warm: stochgrasp-pcm whose first half of the steps trains without the device
  (``--device-warmup 0.5``: hardware-aware fine-tuning of a digitally trained adapter);
- grasp-w-pcm-warm: grasp-w-pcm with the same digital warm-up (stochgrasp-pcm-warm's matched
  control: the same K, parameters, device, drift range and warm-up, sigma = 0);
- the issue's untried fixes, each against its matched control: stochgrasp-pcm-warm-half
  (sigma_target half of auto), stochgrasp-pcm-warm-1d and grasp-w-pcm-warm-1d (trained at the one
  drift time 1 d instead of 1h..1y), and the device pcm-per-column (pcm with aihwkit's per-column
  drift compensation instead of its global one; deployment only, written to results/profiles/);
- stochgrasp-pcm-warm-ff1 and grasp-w-pcm-warm-ff1: the warm pair with device-aware training on block
  1's feed-forward pair only (``--device-layers``; the layers StochGRASP's sensitivity map found
  costliest under drift), every other layer trained digitally;
- stochgrasp-pcm-chip-warm and grasp-w-pcm-chip-warm: the warm pair trained against pcm-chip (the
  14 nm chip profile: two device pairs per weight, 256-tiles, static input ranges calibrated at
  the end of the warm-up) instead of pcm;
- lora-r8: LoRA r = 8 on query/value (the peft library);
- ahwa-lora-pcm: LoRA r = 8 trained against pcm over 1h..1y (the AHWA-LoRA protocol: aihwkit PCM,
  g_max 25 uS, output noise 0.04, 8-bit DAC/ADC, which is the pcm profile).
- lightning-pcm-warm: the field's AHWA recipe, full fine-tuning with aihwkit-lightning at pcm-like
  settings (needs ``pip install imc-sim[lightning]``; src/imc_sim/peft/lightning.py), tuned and as
  IBM applies it, hardware-aware fine-tuning of a digitally fine-tuned model: the first half of
  the steps plain full fine-tuning
  (``--device-warmup 0.5``), lr 1e-4 (the best on pcm of 3e-5 / 1e-4 / 3e-4 cold and 3e-5 / 1e-4
  warm in one-seed pilots: docs/results.md). Its untuned first form (lr 3e-5, no warm-up; one
  training seed, section drift_pcm-full-lightning) is no longer an arm.
Every checkpoint (arm x training seed) deployed on pcm, pcm-per-column and pcm-chip at 1s 1h 1d 1w
30d 1y 10y, reram at 1s 1d 2d, fefet at 1s 1h 1d 1w 30d 1y 10y, on the same --seeds chips each (a
resumable sweep per device). pcm-noise2 and pcm-noise3 are pcm with its device noise (programming,
1/f read, per-read) times 2 and 3: points further along Fig. 6's noise axis, not real devices
(experiments/noise_regime.py sets them beside the Gaussian curves).
Training jobs and sweep units run in this process, or with --ray as tasks on a local Ray.

The headline on each device (``results/drift_<device>-headline-<tag>.json`` and docs/results.md):
each StochGRASP arm against each deterministic GRASP at 1 d and 1 y (2 d on reram), paired by
training seed and chip, tested with a paired t-test over training seeds of the chip-averaged
differences (why that test: experiments/paired.py); the per-seed, per-chip numbers are in the JSON.

    python experiments/drift_pcm.py --data-dir ../shared/data/glue            # full
    python experiments/drift_pcm.py --data-dir ../shared/data/glue --quick    # smoke run

Time on 2 CPU cores (measured for one training seed; docs/results.md): training the 8 arms about
1 h (plain steps 0.13-0.35 s, device-aware ones 0.2-0.4 s), then about 3 s per realization: pcm
(8 x 70) 30 min, reram (8 x 30) 12 min, fefet (8 x 70) 30 min; about 2 h 10 min per training seed,
so the default 3 seeds are about 3 times that (not measured; a sweep unit also loads, calibrates
and evaluates its checkpoint digitally once). The pcm-chip pair trains in 10-13 min per training
seed and arm (one thread per Ray worker, 2 workers and a third job on 2 cores), and a pcm-chip unit
(one checkpoint, one chip, 1 d and 1 y) takes about 35 s on one thread. With two Ray workers of
one thread: a reram unit (3 times) every 13 s, a fefet unit at 1h,1d,1y every 14 s, and the warm
pair's 6 checkpoints trained in 45 min. --devices runs a subset, checkpoints and finished sweep
units are cached.
"""

from __future__ import annotations

import sys

import yaml
from common import (
    RESULTS,
    ArmCheckpoint,
    add_grid_options,
    apply_quick,
    by_arm,
    common_parser,
    grid_runners,
    pool_training_seeds,
    publish,
    sweep_on_device,
    train_arm_seeds,
    write_json,
)
from paired import Comparison, compare_arms, markdown_table

from imc_sim.atomic import write_text_atomic
from imc_sim.cli import run_script  # noqa: E402
from imc_sim.cli.numbers import file_stem, names_of
from imc_sim.deploy.results import CompareResult
from imc_sim.devices.profile import shipped_profiles
from imc_sim.errors import ImcSimError
from imc_sim.units import parse_times

K64 = {"k": 64, "rows": "rows"}
FF1 = r".*layer\.1\.(intermediate|output)\.dense"  # block 1's feed-forward pair
ARMS = {
    "grasp-k32": {"method": "grasp", "method_options": {"k": 32}},
    "grasp-w-k64": {"method": "grasp-w", "method_options": K64},
    "stochgrasp-gauss": {"method": "stochgrasp", "method_options": {**K64, "sigma_target": 0.01}},
    "stochgrasp-pcm": {"method": "stochgrasp", "device": "pcm", "drift": "1h..1y",
                       "method_options": {**K64, "sigma_target": "auto"}},
    "grasp-w-pcm": {"method": "grasp-w", "device": "pcm", "drift": "1h..1y", "method_options": K64},
    "stochgrasp-pcm-warm": {"method": "stochgrasp", "device": "pcm", "drift": "1h..1y",
                            "device_warmup": 0.5, "method_options": {**K64, "sigma_target": "auto"}},
    "grasp-w-pcm-warm": {"method": "grasp-w", "device": "pcm", "drift": "1h..1y", "device_warmup": 0.5,
                         "method_options": K64},
    "stochgrasp-pcm-warm-half": {"method": "stochgrasp", "device": "pcm", "drift": "1h..1y",
                                 "device_warmup": 0.5, "method_options": {**K64, "sigma_target": "auto*0.5"}},
    "stochgrasp-pcm-warm-1d": {"method": "stochgrasp", "device": "pcm", "drift": "1d", "device_warmup": 0.5,
                               "method_options": {**K64, "sigma_target": "auto"}},
    "grasp-w-pcm-warm-1d": {"method": "grasp-w", "device": "pcm", "drift": "1d", "device_warmup": 0.5,
                            "method_options": K64},
    "stochgrasp-pcm-warm-ff1": {"method": "stochgrasp", "device": "pcm", "drift": "1h..1y",
                                "device_warmup": 0.5, "device_layers": FF1,
                                "method_options": {**K64, "sigma_target": "auto"}},
    "grasp-w-pcm-warm-ff1": {"method": "grasp-w", "device": "pcm", "drift": "1h..1y", "device_warmup": 0.5,
                             "device_layers": FF1, "method_options": K64},
    "stochgrasp-pcm-chip-warm": {"method": "stochgrasp", "device": "pcm-chip", "drift": "1h..1y",
                                 "device_warmup": 0.5, "method_options": {**K64, "sigma_target": "auto"}},
    "grasp-w-pcm-chip-warm": {"method": "grasp-w", "device": "pcm-chip", "drift": "1h..1y",
                              "device_warmup": 0.5, "method_options": K64},
    "lora-r8": {"method": "lora", "method_options": {"lora_r": 8, "targets": "query,value"}},
    "ahwa-lora-pcm": {"method": "lora", "device": "pcm", "drift": "1h..1y",
                      "method_options": {"lora_r": 8, "targets": "query,value"}},
    "lightning-pcm-warm": {"method": "lightning", "device_warmup": 0.5, "lr": 1e-4},
}
PCM_TIMES = "1s,1h,1d,1w,30d,1y,10y"
DEVICES = {"pcm": PCM_TIMES, "reram": "1s,1d,2d", "fefet": PCM_TIMES, "pcm-per-column": PCM_TIMES,
           "pcm-chip": PCM_TIMES, "pcm-noise2": PCM_TIMES, "pcm-noise3": PCM_TIMES}


def noisier(factor: float) -> dict:
    """pcm's device noise (programming, 1/f read, per-read) times ``factor``; drift and periphery
    as pcm's: a point further along the noise axis of Fig. 6, not a real device."""
    pcm = yaml.safe_load(shipped_profiles()["pcm"].read_text())
    programming, read = pcm["programming"], pcm["read_noise"]
    return {"programming": {"scale": programming["scale"] * factor},
            "read_noise": {"scale": read["scale"] * factor, "per_read": read["per_read"] * factor}}


# device: (shipped base, changes merged into its YAML)
VARIANTS = {"pcm-per-column": ("pcm", {"compensation": "per-column"}),
            "pcm-noise2": ("pcm", noisier(2.0)), "pcm-noise3": ("pcm", noisier(3.0))}


STOCH = ("stochgrasp-gauss", "stochgrasp-pcm", "stochgrasp-pcm-warm", "stochgrasp-pcm-warm-half",
         "stochgrasp-pcm-warm-1d", "stochgrasp-pcm-warm-ff1", "stochgrasp-pcm-chip-warm")
DETERMINISTIC = ("grasp-w-k64", "grasp-k32", "grasp-w-pcm", "grasp-w-pcm-warm", "grasp-w-pcm-warm-1d",
                 "grasp-w-pcm-warm-ff1", "grasp-w-pcm-chip-warm")
FIELD = ("lightning-pcm-warm",)  # the field's hardware-aware recipe (aihwkit-lightning)
LORA_PAIR = ("ahwa-lora-pcm", "lora-r8")  # hardware-aware LoRA against plain LoRA
HEADLINE_TIMES = ("1d", "2d", "1y")  # 2 d: reram's last time (aihwkit's reram model ends there)


def headline_pairs(arms: dict) -> list[tuple[str, list[str]]]:
    """(arm, the arms it is compared with) among ``arms``: each StochGRASP arm against each
    deterministic GRASP and aihwkit-lightning arm, and hardware-aware LoRA against LoRA."""
    pairs = [(s, [o for o in DETERMINISTIC + FIELD if o in arms]) for s in STOCH if s in arms]
    hardware_aware, plain = LORA_PAIR
    pairs.append((hardware_aware, [plain] if hardware_aware in arms and plain in arms else []))
    return [(a, others) for a, others in pairs if others]


def headline(result: CompareResult, grid: list[ArmCheckpoint]) -> list[Comparison]:
    """The issue's target on ``result``'s device (:func:`headline_pairs`) at those of
    HEADLINE_TIMES it has, paired by training seed and chip (printed; returned for the JSON)."""
    arms = by_arm(result, grid)
    labels = {p.label for p in result.checkpoints[0].points}
    comparisons = []
    for name, others in headline_pairs(arms):
        for label in (t for t in HEADLINE_TIMES if t in labels):
            for i, other in enumerate(others):
                c = compare_arms(arms[name], arms[other], name, other, label)
                if i == 0:
                    below = [p.digital_a - p.mean_a for p in c.per_seed]
                    print(f"{result.device} @ {label}: {name} below its digital by "
                          + ", ".join(f"{100 * b:.2f}" for b in below) + " (per training seed)")
                print(f"  vs {other}: over training seeds {c.over_seeds.describe()}; per seed "
                      + "; ".join(f"s{p.train_seed} {p.chips.describe()}" for p in c.per_seed))
                comparisons.append(c)
    return comparisons


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, section by section (a new dict)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def profile_reference(device: str) -> str:
    """A shipped profile's name; for one of VARIANTS, the YAML written from its base with its
    changes (``results/profiles/<device>.yaml``)."""
    if device not in VARIANTS:
        return device
    base, changes = VARIANTS[device]
    raw = merged(yaml.safe_load(shipped_profiles()[base].read_text()), changes)
    raw.update(name=device, description=f"{base} with {changes} (experiments/drift_pcm.py)")
    path = RESULTS / "profiles" / f"{device}.yaml"
    write_text_atomic(path, yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def main() -> None:
    parser = common_parser(__doc__.splitlines()[0])
    parser.add_argument("--devices", type=names_of(DEVICES), default=tuple(DEVICES),
                        help="comma-separated subset (default: all)")
    parser.add_argument("--arms", type=names_of(ARMS),
                        help="comma-separated subset of the arms (needs --label)")
    parser.add_argument("--times", help="drift times for every device, e.g. 1h,1d,1y (needs --label)")
    parser.add_argument("--label", type=file_stem,
                        help="suffix of the results' names, drift_<device>-<tag>-<label>, for a "
                             "run narrowed by --arms or --times (checkpoints stay shared)")
    add_grid_options(parser)
    args = parser.parse_args()
    arms = {a: ARMS[a] for a in args.arms or ARMS}
    if (args.arms or args.times) and not args.label:
        raise ImcSimError("--arms and --times need --label, so that the full run's results are not replaced")
    if args.times:
        parse_times(args.times)  # before any training
    tag = apply_quick(args)
    command = "python experiments/drift_pcm.py " + " ".join(sys.argv[1:])
    runner, executor = grid_runners(args)
    with runner:
        grid = train_arm_seeds(arms, args, tag, runner)
        for device in args.devices:
            name = f"drift_{device}-{tag}" + (f"-{args.label}" if args.label else "")
            result = sweep_on_device(name, grid, profile_reference(device), args.times or DEVICES[device],
                                     args, executor)
            extra = ""
            comparisons = headline(result, grid)
            if comparisons:
                family = f"drift_{device.split('-')[0]}"  # pcm-noise2's is drift_pcm-headline-noise2-...
                headline_name = name.replace(family, f"{family}-headline", 1)
                write_json(headline_name, {
                    "experiment": headline_name, "quick": args.quick, "steps": args.steps,
                    "device": result.device, "metric_name": result.metric_name,
                    "train_seeds": list(range(args.train_seeds)), "chips": result.seeds,
                    "test": "paired t-test over training seeds of the chip-averaged differences "
                            "(two-sided; experiments/paired.py)",
                    "comparisons": [c.to_json() for c in comparisons]})
                extra = markdown_table(comparisons, result.seeds)
            publish(name, pool_training_seeds(result, grid), command,
                    f"{result.task} on {device} ({args.steps} steps, {args.train_seeds} training seeds x "
                    f"{args.seeds} chips)", extra)
    print(f"results in {RESULTS}")


if __name__ == "__main__":
    run_script(main)
