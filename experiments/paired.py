"""Paired comparison of two arms over training seeds x chips (the drift experiments' headline).

Every checkpoint (arm, training seed s) is deployed on the same chips c = 0..C-1, so the
difference d[s][c] = a[s][c] - b[s][c] is paired by chip (the same seed draws the same programming
noise, drift and read noise for both arms), and arms are paired by training seed (seed s gives
every arm the same batch order and head initialisation).

The test: a paired t-test over training seeds of the chip-averaged differences
D[s] = mean_c d[s][c], t = mean(D) / (std(D) / sqrt(S)) with S - 1 degrees of freedom, two-sided.
Why not a t-test over all S x C differences: the C chips are the same for every training seed, so
the S x C pairs are not independent (a chip that is hard for one seed's checkpoints is hard for
every seed's), and treating them as S x C independent samples overstates the evidence. Averaging
over chips leaves one number per training seed, and training seeds are independent runs; what
varies between them (the training seed's effect plus the chip noise left after averaging C chips)
is what the test's std measures. The chip set is common to all seeds, so the test is conditional
on these C chips; the per-seed chip-level statistics (mean, std, t over chips, chips ahead) are
reported beside it to show the chip-to-chip spread. With S = 3 the test has 2 degrees of freedom
(t above 4.30 for p < 0.05): it is honest about how little 3 training runs say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

from imc_sim.deploy.results import CheckpointCurve, SeedSummary


@dataclass(frozen=True)
class PairedStats:
    """Differences a - b: their mean, sample std (n - 1), t = mean / (std / sqrt n) with n - 1
    degrees of freedom, the two-sided p of Student's t, and how many are > 0. ``t`` and ``p`` are
    None when undefined (one difference, or all equal)."""

    diffs: tuple[float, ...]
    mean: float
    std: float
    t: float | None
    df: int
    p: float | None
    ahead: int

    @classmethod
    def of(cls, diffs: Sequence[float]) -> PairedStats:
        summary = SeedSummary.of(diffs)  # ValueError without a difference
        n, mean, std = len(diffs), summary.mean, summary.std
        t = mean / (std / math.sqrt(n)) if n > 1 and std > 0 else None
        p = None if t is None else float(2 * stats.t.sf(abs(t), n - 1))
        return cls(tuple(diffs), mean, std, t, n - 1, p, sum(d > 0 for d in diffs))

    def describe(self, scale: float = 100.0) -> str:
        t = "n/a" if self.t is None else f"{self.t:+.2f}"
        p = "n/a" if self.p is None else f"{self.p:.3g}"
        return (f"{scale * self.mean:+.2f} +- {scale * self.std:.2f}, t({self.df}) {t}, p {p}, "
                f"ahead {self.ahead}/{len(self.diffs)}")


@dataclass(frozen=True)
class SeedPair:
    """One training seed: both arms' chip means and digital metrics, and the per-chip differences."""

    train_seed: int
    mean_a: float
    mean_b: float
    digital_a: float
    digital_b: float
    chips: PairedStats


@dataclass(frozen=True)
class Comparison:
    """Arm a against arm b at one drift time: per training seed, and the test over training seeds
    (``over_seeds``: the chip-averaged differences, one per seed)."""

    arm_a: str
    arm_b: str
    label: str
    per_seed: tuple[SeedPair, ...]
    over_seeds: PairedStats

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_arms(a: Mapping[int, CheckpointCurve], b: Mapping[int, CheckpointCurve], arm_a: str,
                 arm_b: str, label: str) -> Comparison:
    """``a`` and ``b``: one curve per training seed (the same seeds, the same chips)."""
    if sorted(a) != sorted(b):
        raise ValueError(f"{arm_a} and {arm_b} have different training seeds: {sorted(a)}, {sorted(b)}")
    pairs = []
    for seed in sorted(a):
        pa, pb = a[seed].at(label), b[seed].at(label)
        chips = PairedStats.of([x - y for x, y in zip(pa.metrics, pb.metrics, strict=True)])
        pairs.append(SeedPair(seed, pa.mean, pb.mean, a[seed].digital_metric, b[seed].digital_metric, chips))
    return Comparison(arm_a, arm_b, label, tuple(pairs), PairedStats.of([p.chips.mean for p in pairs]))


def markdown_table(comparisons: Sequence[Comparison], chips: int, unit: str = "chips") -> str:
    """One row per comparison: the test over training seeds, then each seed's result over its
    ``chips`` paired realizations (chips, or noise seeds)."""
    seeds = len(comparisons[0].per_seed) if comparisons else 0
    rows = ["| comparison | time | mean diff +- std over seeds | t (df) | p | per training seed "
            f"(mean diff over {unit}, {unit} ahead of {chips}) |", "|---|---|---|---|---|---|"]
    for c in comparisons:
        s = c.over_seeds
        per_seed = "; ".join(f"s{p.train_seed}: {100 * p.chips.mean:+.2f} ({p.chips.ahead})"
                             for p in c.per_seed)
        t = "n/a" if s.t is None else f"{s.t:+.2f} ({s.df})"
        p = "n/a" if s.p is None else f"{s.p:.3g}"
        rows.append(f"| {c.arm_a} - {c.arm_b} | {c.label} | {100 * s.mean:+.2f} +- {100 * s.std:.2f} "
                    f"| {t} | {p} | {per_seed} |")
    return "\n".join(rows) + f"\n\n(differences in points; {seeds} training seeds x {chips} {unit}; " \
        f"paired t-test over training seeds of the differences averaged over {unit}: experiments/paired.py)"
