"""Fidelity, ablation: one checkpoint on pcm, with pcm-chip's chip effects added one at a time.

The steps are cumulative, each a function (previous profile, pcm-chip) -> profile applied with
``dataclasses.replace`` to the typed sections of :class:`~imc_sim.devices.profile.DeviceProfile`,
starting from pcm without per-read noise:

    pcm, dynamic ranges -> static input ranges -> + per-read noise -> + devices per weight -> + faults
    -> + pcm-chip's tiles -> + IR drop

each step taking pcm-chip's value (``device_models/pcm-chip.yaml``). pcm-chip states no faults and
no IR drop (no published wire resistance); those steps then use :data:`ASSUMED_FAULTS` and
:data:`ASSUMED_IR_DROP` (aihwkit's 0.35 ohm per cell), and say so in their names. Every step is deployed
on the same chips (seeds) at the same times; a step's cost is its accuracy minus the previous
step's, per chip (paired), mean +- std over chips.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imc_sim.deploy.results import SeedSummary, TimePoint
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.devices.profile import DeviceProfile, Faults, load_profile
from imc_sim.table import format_table

ASSUMED_FAULTS = Faults(stuck_low=0.01, stuck_high=0.01)  # pcm-chip.yaml states none: an assumption
ASSUMED_IR_DROP = 1.0  # the full steady-state drop at the profile's wire resistance: an assumption

Change = Callable[[DeviceProfile, DeviceProfile], DeviceProfile]


@dataclass(frozen=True)
class Step:
    """One step of the ablation: its name and how it changes the previous step's profile."""

    name: str
    change: Change


def static_ranges(p: DeviceProfile, chip: DeviceProfile) -> DeviceProfile:
    periphery = dataclasses.replace(p.periphery, input_range=chip.periphery.input_range,
                                    noise_management=chip.periphery.noise_management,
                                    input_percentile=chip.periphery.input_percentile)
    return dataclasses.replace(p, periphery=periphery)


def per_read_noise(p: DeviceProfile, chip: DeviceProfile) -> DeviceProfile:
    return dataclasses.replace(p, read_noise={**p.read_noise, "per_read": chip.read_noise["per_read"]})


def devices_per_weight(p: DeviceProfile, chip: DeviceProfile) -> DeviceProfile:
    return dataclasses.replace(p, devices_per_weight=chip.devices_per_weight)


def chip_faults(chip: DeviceProfile) -> Faults:
    """pcm-chip's faults, or :data:`ASSUMED_FAULTS` where it states none."""
    return chip.faults if chip.faults.any else ASSUMED_FAULTS


def faults(p: DeviceProfile, chip: DeviceProfile) -> DeviceProfile:
    return dataclasses.replace(p, faults=chip_faults(chip))


def chip_tiles(p: DeviceProfile, chip: DeviceProfile) -> DeviceProfile:
    c = chip.periphery
    return dataclasses.replace(p, periphery=dataclasses.replace(
        p.periphery, tile_rows=c.tile_rows, tile_cols=c.tile_cols, tile_split=c.tile_split))


def chip_ir_drop(chip: DeviceProfile) -> float:
    """pcm-chip's IR-drop scale, or :data:`ASSUMED_IR_DROP` where it sets none."""
    return chip.periphery.ir_drop or ASSUMED_IR_DROP


def ir_drop(p: DeviceProfile, chip: DeviceProfile) -> DeviceProfile:
    return dataclasses.replace(p, periphery=dataclasses.replace(
        p.periphery, ir_drop=chip_ir_drop(chip), wire_resistance=chip.periphery.wire_resistance))


def steps(chip: DeviceProfile) -> list[Step]:
    """The ablation's steps, in order (the first is the starting point, unchanged)."""
    f = chip_faults(chip)
    assumed = "" if chip.faults.any else ", assumed"
    return [
        Step("pcm, dynamic ranges, no per-read noise", lambda p, _chip: p),
        Step("static input ranges", static_ranges),
        Step(f"+ per-read noise {chip.read_noise['per_read']:g}", per_read_noise),
        Step(f"+ {chip.devices_per_weight} devices per weight", devices_per_weight),
        Step(f"+ faults (stuck low {f.stuck_low:g}, high {f.stuck_high:g}, dead columns "
             f"{f.dead_columns:g}{assumed})", faults),
        Step(f"+ {chip.periphery.tile_rows}x{chip.periphery.tile_cols} tiles, {chip.periphery.tile_split} "
             "split", chip_tiles),
        Step(f"+ IR drop (scale {chip_ir_drop(chip):g}, {chip.periphery.wire_resistance:g} ohm per cell"
             f"{'' if chip.periphery.ir_drop else ', assumed'})", ir_drop),
    ]


@dataclass(frozen=True)
class StepResult:
    """One step: its profile's name, the digital accuracy and one TimePoint per drift time."""

    step: str
    profile: str
    digital: float
    points: tuple[TimePoint, ...]


def run_ablation(path: str | Path, times: list[float], seeds: int, data_dir: str,
                 eval_limit: int | None, chip_name: str = "pcm-chip") -> list[StepResult]:
    """Deploy ``path`` at every step (cumulative), seeds 0..seeds-1 at ``times``."""
    chip = load_profile(chip_name)
    start = load_profile("pcm")
    profile = dataclasses.replace(start, read_noise={**start.read_noise, "per_read": 0.0})
    results = []
    for k, step in enumerate(steps(chip)):
        profile = dataclasses.replace(step.change(profile, chip), name=f"pcm-ablation-{k}")
        deployed = deploy_checkpoint(path, profile, times, seeds, data_dir, eval_limit, progress=False,
                                     name=step.name)
        results.append(StepResult(step.name, profile.name, deployed.curve.digital_metric,
                                  deployed.curve.points))
    return results


def step_costs(results: Sequence[StepResult]) -> list[list[SeedSummary | None]]:
    """Per step and time, the paired per-chip differences to the previous step (None: first)."""
    costs: list[list[SeedSummary | None]] = [[None] * len(results[0].points)]
    for previous, current in zip(results[:-1], results[1:], strict=True):
        costs.append([SeedSummary.of([a - b for a, b in zip(now.metrics, before.metrics, strict=True)])
                      for now, before in zip(current.points, previous.points, strict=True)])
    return costs


def format_ablation_table(results: Sequence[StepResult], markdown: bool = False) -> str:
    rows = []
    for result, costs in zip(results, step_costs(results), strict=True):
        for point, cost in zip(result.points, costs, strict=True):
            delta = "" if cost is None else f"{100 * cost.mean:+.2f} +- {100 * cost.std:.2f}"
            rows.append([result.step, point.label, f"{100 * point.mean:.2f} +- {100 * point.std:.2f}",
                         delta])
    seeds = len(results[0].points[0].metrics)
    headers = ["step", "drift", f"accuracy % ({seeds} chips)", "change vs previous step (pp, per chip)"]
    return format_table(headers, rows, markdown)
