"""Drift on realistic devices: deterministic GRASP, StochGRASP (Gaussian- and device-trained),
LoRA and hardware-aware LoRA, deployed on pcm, reram and fefet with the same chips for all.

Arms (packaged MiniLM-L6, SST-2, --steps steps, seed 0):
- grasp-k32: activation-space GRASP, K = 32, all linear layers;
- grasp-w-k64: deterministic weight-space GRASP, K = 64 per row (StochGRASP without sigma);
- stochgrasp-gauss: StochGRASP K = 64 per row, noise-aware loss with sigma_target 0.01 (Gaussian);
- stochgrasp-pcm: the same trained against pcm over 1h..1y, sigma_target auto;
- grasp-w-pcm: grasp-w-k64 trained against pcm over 1h..1y (StochGRASP-pcm with sigma = 0: the
  control that separates the device in the loop from the learned sigma);
- stochgrasp-pcm-warm: stochgrasp-pcm whose first half of the steps trains without the device
  (``--device-warmup 0.5``: hardware-aware fine-tuning of a digitally trained adapter);
- lora-r8: LoRA r = 8 on query/value (the peft library);
- ahwa-lora-pcm: LoRA r = 8 trained against pcm over 1h..1y (the AHWA-LoRA protocol: aihwkit PCM,
  g_max 25 uS, output noise 0.04, 8-bit DAC/ADC, which is the pcm profile).
Deployed on pcm at 1s 1h 1d 1w 30d 1y 10y, reram at 1s 1d 2d, fefet at 1s 1h 1d 1w 30d 1y 10y,
--seeds chips each.

    python experiments/drift_pcm.py --data-dir ../shared/data/glue            # full
    python experiments/drift_pcm.py --data-dir ../shared/data/glue --quick    # smoke run

Time on 2 CPU cores (measured; docs/results.md): training the 8 arms about 1 h (plain steps 0.13-
0.35 s, device-aware ones 0.2-0.4 s), then about 3 s per realization: pcm (8 x 70) 30 min, reram
(8 x 30) 12 min, fefet (8 x 70) 30 min; full about 2 h 10 min, --seeds 5 halves the evaluation.
--devices runs a subset, checkpoints are cached; --quick about 20 min.
"""

from __future__ import annotations

import sys

from common import apply_quick, common_parser, compare_on_device, train_arms

from imc_sim.deploy.results import CompareResult, SeedSummary, TimePoint

K64 = {"k": 64, "rows": "rows"}
ARMS = {
    "grasp-k32": {"method": "grasp", "method_options": {"k": 32}},
    "grasp-w-k64": {"method": "grasp-w", "method_options": K64},
    "stochgrasp-gauss": {"method": "stochgrasp", "method_options": {**K64, "sigma_target": 0.01}},
    "stochgrasp-pcm": {"method": "stochgrasp", "device": "pcm", "drift": "1h..1y",
                       "method_options": {**K64, "sigma_target": "auto"}},
    "grasp-w-pcm": {"method": "grasp-w", "device": "pcm", "drift": "1h..1y", "method_options": K64},
    "stochgrasp-pcm-warm": {"method": "stochgrasp", "device": "pcm", "drift": "1h..1y",
                            "device_warmup": 0.5, "method_options": {**K64, "sigma_target": "auto"}},
    "lora-r8": {"method": "lora", "method_options": {"lora_r": 8, "targets": "query,value"}},
    "ahwa-lora-pcm": {"method": "lora", "device": "pcm", "drift": "1h..1y",
                      "method_options": {"lora_r": 8, "targets": "query,value"}},
}
DEVICES = {"pcm": "1s,1h,1d,1w,30d,1y,10y", "reram": "1s,1d,2d", "fefet": "1s,1h,1d,1w,30d,1y,10y"}


def paired(a: TimePoint, b: TimePoint) -> str:
    """Per-chip differences a - b at one time (the same seeds are the same chips): mean, t (mean
    over std / sqrt(n)) and the chips on which a is ahead."""
    diffs = [x - y for x, y in zip(a.metrics, b.metrics, strict=True)]
    d = SeedSummary.of(diffs)
    t = d.mean / (d.std / len(diffs) ** 0.5) if d.std else float("inf")
    return f"paired {100 * d.mean:+.2f}, t {t:+.1f}, ahead on {sum(x > 0 for x in diffs)}/{len(diffs)} chips"


def headline(result: CompareResult) -> None:
    """The issue's target on pcm: StochGRASP-pcm against each deterministic GRASP at 1 d and 1 y
    (gap in units of the larger std over seeds, and paired by chip), and its loss against its own
    digital accuracy."""
    by_arm = {c.name.rsplit("-", 1)[0]: c for c in result.checkpoints}
    for name, label in ((n, t) for n in ("stochgrasp-pcm", "stochgrasp-pcm-warm") for t in ("1d", "1y")):
        stoch = by_arm[name]
        s = stoch.at(label)
        print(f"pcm @ {label}: {name} {100 * s.mean:.2f} +- {100 * s.std:.2f}, "
              f"{100 * (stoch.digital_metric - s.mean):.2f} below its digital")
        for other in ("grasp-w-k64", "grasp-k32", "grasp-w-pcm"):
            d = by_arm[other].at(label)
            gap, spread = s.mean - d.mean, max(s.std, d.std)
            print(f"  vs {other} {100 * d.mean:.2f} +- {100 * d.std:.2f}: gap "
                  f"{100 * gap:+.2f} = {gap / spread if spread else float('inf'):+.1f} std; {paired(s, d)}")


def main() -> None:
    parser = common_parser(__doc__.splitlines()[0])
    parser.add_argument("--devices", default=",".join(DEVICES), help="comma-separated subset")
    args = parser.parse_args()
    tag = apply_quick(args)
    paths = train_arms(ARMS, args, tag)
    command = "python experiments/drift_pcm.py " + " ".join(sys.argv[1:])
    for device in args.devices.split(","):
        result = compare_on_device(f"drift_{device}-{tag}", paths, device, DEVICES[device], args, command)
        if device == "pcm":
            headline(result)


if __name__ == "__main__":
    main()
