"""Measured conductances of programmed devices: read from CSV or JSON lines, checked, or drawn.

One row per read: ``device`` (an id, optional), ``g_target`` (uS, the programmed target),
``time`` (s after programming), ``g_read`` (uS, the conductance read). A (device, time) may be
read more than once; the spread of those reads is the read noise. Without a ``device`` column the
k-th row of each (target, time) is taken to be the k-th device of that target (an array read out
in the same order at every time, once per time).

:func:`draw_measurements` draws such a set through a device family itself (the round trip of
``imc-sim devices fit``), from one explicit ``torch.Generator``.
"""

from __future__ import annotations

import csv
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imc_sim.data.files import read_text
from imc_sim.devices.families import build_family
from imc_sim.devices.profile import DeviceProfile
from imc_sim.documents import MalformedDocument, parse_json
from imc_sim.errors import ImcSimError

COLUMNS = ("g_target", "time", "g_read")  # required; ``device`` is optional
NEEDED = "device (optional), g_target (uS), time (s), g_read (uS)"


@dataclass(frozen=True)
class Measurements:
    """Reads as parallel arrays: device index (0..n_devices-1), target (uS), time (s), read (uS)."""

    device: np.ndarray
    g_target: np.ndarray
    time: np.ndarray
    g_read: np.ndarray
    source: str = "<memory>"

    @property
    def n_devices(self) -> int:
        return int(self.device.max()) + 1 if self.device.size else 0


def _rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, row) of ``path``'s ``text``: CSV, or JSON lines (one object per line)."""
    if text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    row = parse_json(line)
                except MalformedDocument as exc:
                    raise ImcSimError(f"measurements {path}: line {number} is {exc}") from None
                if not isinstance(row, dict):
                    raise ImcSimError(f"measurements {path}: line {number} is not a JSON object")
                yield number, row
        return
    reader = csv.DictReader(text.splitlines())
    try:
        yield from enumerate(reader, start=2)
    except csv.Error as exc:
        # the reader counts the lines it has finished; the bad one is the next
        line = reader.line_num + 1
        raise ImcSimError(f"measurements {path}: line {line} is not valid CSV ({exc})") from None


def _number(value: object, column: str, where: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ImcSimError(f"{where}: column {column} = {value!r:.40} is not a number") from None
    except OverflowError:
        raise ImcSimError(f"{where}: column {column} = {value!r:.40}... is beyond any float") from None
    if not math.isfinite(out):
        raise ImcSimError(f"{where}: column {column} = {value!r} is not a finite number (NaN or inf)")
    if out < 0:
        unit = "s" if column == "time" else "uS"
        raise ImcSimError(f"{where}: column {column} = {out:g} {unit} is negative")
    return out


def read_measurements(path: str | Path) -> Measurements:
    """The reads of a CSV or JSON-lines file (columns: see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ImcSimError(f"measurements {path}: no such file")
    rows = list(_rows(path, read_text(path)))  # UTF-8, with or without a spreadsheet's byte-order mark
    if not rows:
        raise ImcSimError(f"measurements {path}: no rows (need columns {NEEDED})")
    has_device = "device" in rows[0][1]
    ids: dict[object, int] = {}
    seen: dict[tuple[float, float], int] = {}
    values: list[tuple[int, float, float, float]] = []
    for number, row in rows:
        where = f"measurements {path}: line {number}"
        missing = [c for c in COLUMNS if row.get(c) in (None, "")]
        if missing:
            raise ImcSimError(f"{where}: missing column {', '.join(missing)} (need {NEEDED})")
        g_target, time, g_read = (_number(row[c], c, where) for c in COLUMNS)
        if has_device:
            key: object = str(row.get("device"))
        else:
            k = seen.get((g_target, time), 0)
            seen[(g_target, time)] = k + 1
            key = (g_target, k)
        values.append((ids.setdefault(key, len(ids)), g_target, time, g_read))
    device, g_target, time, g_read = (np.asarray(c) for c in zip(*values, strict=True))
    m = Measurements(device.astype(np.int64), g_target, time, g_read, str(path))
    _check_targets(m)
    return m


def _check_targets(m: Measurements) -> None:
    lo = np.full(m.n_devices, np.inf)
    hi = np.full(m.n_devices, -np.inf)
    np.minimum.at(lo, m.device, m.g_target)
    np.maximum.at(hi, m.device, m.g_target)
    bad = np.flatnonzero(hi - lo > 1e-9 * np.maximum(hi, 1.0))
    if bad.size:
        raise ImcSimError(f"measurements {m.source}: a device has two targets "
                          f"({lo[bad[0]]:g} and {hi[bad[0]]:g} uS); one target per device")


def _check_drawing(profile: DeviceProfile, targets: Sequence[float], times: Sequence[float],
                   devices_per_target: int, reads: int, seed: int) -> None:
    """One line for arguments :func:`draw_measurements` cannot draw from."""
    g_max = profile.conductance.get("g_max", math.inf)
    if not len(targets) or not all(_real(g) and 0 <= g <= g_max for g in targets):
        raise ImcSimError(f"draw_measurements: targets {list(targets)!r} must be conductances in [0, "
                          f"{g_max:g}] uS (the profile's g_max), at least one")
    if not len(times) or not all(_real(t) and t >= 0 for t in times):
        raise ImcSimError(f"draw_measurements: times {list(times)!r} must be seconds >= 0, at least one")
    for name, value in (("devices_per_target", devices_per_target), ("reads", reads)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ImcSimError(f"draw_measurements: {name} = {value!r} must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ImcSimError(f"draw_measurements: seed = {seed!r} must be an integer from 0 to 2**63 - 1")


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@torch.no_grad()
def draw_measurements(profile: DeviceProfile, targets: Sequence[float], times: Sequence[float],
                      devices_per_target: int, reads: int = 1, seed: int = 0) -> Measurements:
    """Reads of ``devices_per_target`` devices at each target (uS) through the profile's family:
    programmed once, drift exponent drawn once, then ``reads`` reads at each time (s), each with
    its own read noise (the family's ``drift`` with fresh normals)."""
    _check_drawing(profile, targets, times, devices_per_target, reads, seed)
    family = build_family(profile)
    generator = torch.Generator().manual_seed(seed)

    def normal(like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)

    g_target = torch.tensor(targets, dtype=torch.float64).repeat_interleave(devices_per_target)
    g_prog = family.program(g_target, normal(g_target))
    nu = family.drift_coefficients(g_target, normal(g_target))
    device = torch.arange(g_target.numel())
    columns: list[tuple[torch.Tensor, ...]] = []
    for t in times:
        for _ in range(reads):
            g = family.drift(g_prog, nu, t, normal(g_prog) if family.drift_noise else None)
            columns.append((device, g_target, torch.full_like(g_target, t), g))
    device, g_target, time, g_read = (torch.cat(c).numpy() for c in zip(*columns, strict=True))
    return Measurements(device, g_target, time, g_read, f"drawn from {profile.name}")
