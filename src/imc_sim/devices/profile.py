"""Device profiles: the YAML files of ``device_models/``, read and validated.

A profile names a device family (``model``, a key of ``imc_sim.devices.families.FAMILIES``) and
gives its parameters in four sections (``conductance``, ``programming``, ``drift``,
``read_noise``), plus the drift ``compensation``, the crossbar ``periphery`` and the chip's
``faults``; ``conductance.devices_per_weight`` (any pair family) sets how many device pairs
hold one weight. Every field is
checked against the family's ``schema``, and across fields by its ``check_profile``; an error
names the file, the field, the value and the allowed range. Conductances are in microsiemens (uS),
times in seconds. ``device_models/README.md`` documents every field.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imc_sim.devices.families import FAMILIES
from imc_sim.devices.schema import SECTIONS, Num, Nums
from imc_sim.documents import MalformedDocument, parse_yaml, real_number, sorted_keys
from imc_sim.errors import ImcSimError

PROFILE_DIR = Path(__file__).resolve().parent.parent / "device_models"
COMPENSATIONS = ("none", "global", "per-column")
NOISE_MANAGEMENT = ("abs-max", "none")
WEIGHT_SCALING = ("none", "per-tile", "per-column")
TILE_SPLITS = ("fixed", "even")
INPUT_RANGES = ("dynamic", "static")
DEVICES_PER_WEIGHT = Num(1, 1, 64, integer=True)
FRACTION = Num(0.0, 0.0, 1.0)

PERIPHERY: dict[str, Any] = {
    "tile_rows": Num(512, 1, 65536, integer=True),
    "tile_cols": Num(512, 1, 65536, integer=True),
    "dac_bits": Num(8, 2, 24, integer=True),
    "adc_bits": Num(8, 2, 24, integer=True),
    "out_noise": Num(0.0, 0.0, 10.0),
    "w_noise": Num(0.0, 0.0, 1.0),
    "out_bound": Num(12.0, 1e-3, 1e6),
    "inp_bound": Num(1.0, 1e-3, 1e6),
    "input_percentile": Num(99.995, 50.0, 100.0),  # percent: aihwkit's quantile 0.99995 is 99.995
    "ir_drop": Num(0.0, 0.0, 100.0),
    "wire_resistance": Num(0.35, 0.0, 1e3),  # ohm
}
PERIPHERY_CHOICES = {"noise_management": ("abs-max", NOISE_MANAGEMENT),
                     "weight_scaling": ("per-column", WEIGHT_SCALING),
                     "tile_split": ("fixed", TILE_SPLITS),
                     "input_range": ("dynamic", INPUT_RANGES)}
TOP_KEYS = ("name", "description", "source", "model", "conductance", "programming", "drift",
            "read_noise", "compensation", "periphery", "faults")


@dataclass(frozen=True)
class Periphery:
    """Tile size, converters and output noise of one crossbar (aihwkit ``IOParameters`` units).

    ``dac_bits``/``adc_bits`` = None (``ideal`` in YAML) means a converter without quantisation.
    ``out_noise`` and ``out_bound`` are in the units of the tile's normalised product x_n . u, inputs
    x_n after noise management (|x_n| <= inp_bound) times weights u = w / mapping scale (|u| <= 1):
    1 is one full-scale input times one full-scale weight, not a tile's full-scale output (aihwkit
    adds ``out_noise * randn`` to that product before rescaling it). ``w_noise`` is the std of the
    weight read noise drawn afresh at every MVM (cycle to cycle), in units of u (aihwkit's
    ``IOParameters.w_noise``, additive constant type). ``tile_split``: ``fixed`` cuts a layer into
    tiles of ``tile_rows`` x ``tile_cols`` and a remainder (768 -> 512 + 256), ``even`` into as
    many tiles, of equal size (768 -> 384 + 384, aihwkit's ``TileModuleArray``). ``input_range``:
    ``dynamic`` (noise management as set) or ``static``: one DAC range per row tile, calibrated once
    from data as the mean over batches of the ``input_percentile``-th percentile (percent) of |x|
    (:mod:`imc_sim.crossbar.input_ranges`); needs ``noise_management: none``. ``ir_drop`` (a scale,
    0 = off) and ``wire_resistance`` (ohm between neighbouring cells): IR drop along the tile's
    input wires, aihwkit's model (:mod:`imc_sim.crossbar.ir_drop`); needs ``tile_rows``.
    """

    tile_rows: int = 512
    tile_cols: int = 512
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    out_noise: float = 0.0
    w_noise: float = 0.0
    out_bound: float = 12.0
    inp_bound: float = 1.0
    noise_management: str = "abs-max"
    weight_scaling: str = "per-column"
    tile_split: str = "fixed"
    input_range: str = "dynamic"
    input_percentile: float = 99.995
    ir_drop: float = 0.0
    wire_resistance: float = 0.35

    @property
    def ir_drop_on(self) -> bool:
        """Whether the tiles lose part of their product to IR drop (a scale and a resistance)."""
        return self.ir_drop > 0 and self.wire_resistance > 0

    @property
    def perfect(self) -> bool:
        """No converter, no output noise and no weight read noise in the periphery."""
        return (self.dac_bits is None and self.adc_bits is None and self.out_noise == 0.0
                and self.w_noise == 0.0 and self.input_range == "dynamic")


@dataclass(frozen=True)
class Faults:
    """Fractions (in [0, 1]) of a chip's faulty devices, drawn per chip at programming: devices
    stuck at g_min (``stuck_low``) or at g_max (``stuck_high``) whatever their target, and tile
    columns that read 0 (``dead_columns``)."""

    stuck_low: float = 0.0
    stuck_high: float = 0.0
    dead_columns: float = 0.0

    @property
    def any(self) -> bool:
        return self.stuck_low > 0 or self.stuck_high > 0 or self.dead_columns > 0


@dataclass(frozen=True)
class DeviceProfile:
    """One validated device profile (see the module docstring and ``device_models/README.md``)."""

    name: str
    description: str
    source: str
    model: str
    conductance: dict[str, Any]
    programming: dict[str, Any]
    drift: dict[str, Any]
    read_noise: dict[str, Any]
    compensation: str = "none"
    periphery: Periphery = field(default_factory=Periphery)
    path: str = ""
    devices_per_weight: int = 1  # device pairs per weight, conductances summed
    faults: Faults = field(default_factory=Faults)

    def document(self) -> dict[str, Any]:
        """The profile as its YAML file holds it (``devices_per_weight`` in ``conductance``, an
        ideal converter as ``ideal``, an optional field not given left out): :func:`profile_from_dict`
        of it gives this profile back."""

        def given(section: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in section.items() if v is not None}

        periphery = {k: "ideal" if v is None else v for k, v in dataclasses.asdict(self.periphery).items()}
        return {"name": self.name, "description": self.description, "source": self.source,
                "model": self.model,
                "conductance": {**given(self.conductance), "devices_per_weight": self.devices_per_weight},
                "programming": given(self.programming), "drift": given(self.drift),
                "read_noise": given(self.read_noise), "compensation": self.compensation,
                "periphery": periphery, "faults": dataclasses.asdict(self.faults)}

    @property
    def drifts(self) -> bool:
        """Whether the family's conductances change with time."""
        return FAMILIES[self.model].drifts

    def check_times(self, seconds: list[float]) -> None:
        """Refuse drift times the family's model cannot produce (ReRAM Wan 2022: 1 s, 1 d, 2 d)."""
        allowed = FAMILIES[self.model].allowed_times
        if allowed is None:
            return
        bad = [t for t in seconds if t not in allowed]
        if bad:
            from imc_sim.units import format_time

            raise ImcSimError(
                f"device {self.name!r} ({self.model}) is only characterised at "
                f"{', '.join(format_time(t) for t in allowed)}; got {format_time(bad[0])}"
            )


def _where(path: str, key: str) -> str:
    return f"profile {path}: field {key}"


def _check_num(spec: Num, value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ImcSimError(f"{where} = {value!r} is not a number; allowed {spec.describe()}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)  # numpy's, from Python
    low_ok = value > spec.lo if spec.open_lo else value >= spec.lo
    if not (real_number(value) is not None and low_ok and value <= spec.hi):
        raise ImcSimError(f"{where} = {_shown(value)} is out of range; allowed {spec.describe()}")
    if spec.integer:
        if value != int(value):
            raise ImcSimError(f"{where} = {value!r} is not an integer; allowed {spec.describe()}")
        return int(value)
    return float(value)


def _shown(value: float | int) -> str:
    """``value`` as written, or its order of magnitude when it has more digits than fit a line."""
    text = repr(value)
    return text if len(text) <= 24 else f"an integer of {len(text)} digits"


def _check_nums(spec: Nums, value: Any, where: str) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) < spec.min_len:
        raise ImcSimError(f"{where} = {value!r} must be a list of at least {spec.min_len} numbers")
    item = Num(None, spec.lo)
    out = [float(_check_num(item, v, f"{where}[{i}]")) for i, v in enumerate(value)]
    if spec.ascending and out != sorted(out):
        raise ImcSimError(f"{where} = {value!r} must be in ascending order")
    return out


def _check_section(schema: dict[str, Any], raw: Any, where: str, model: str,
                   checked_apart: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``schema`` from ``raw``, checked; ``checked_apart`` names the fields of the
    section checked (and removed from ``raw``) before, which the list of known fields includes."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ImcSimError(f"{where} must be a mapping of fields, got {raw!r}")
    unknown = sorted_keys(set(raw) - set(schema))
    if unknown:
        known = ", ".join([*schema, *checked_apart]) or "none"
        raise ImcSimError(f"{where}.{unknown[0]} is not a field of model {model!r} (known: {known})")
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        sub = f"{where}.{key}"
        if isinstance(spec, dict):
            if key in raw:
                out[key] = _check_section(spec, raw[key], sub, model)
                lengths = {len(v) for v in out[key].values()}
                if len(lengths) > 1:
                    raise ImcSimError(f"{sub}: lists {', '.join(spec)} must have equal lengths")
            continue
        if key not in raw:
            if spec.default is None and not getattr(spec, "optional", False):
                raise ImcSimError(f"{sub} is missing (model {model!r} needs it)")
            out[key] = spec.default
        elif isinstance(spec, Num):
            out[key] = _check_num(spec, raw[key], sub)
        elif isinstance(spec, Nums):
            out[key] = _check_nums(spec, raw[key], sub)
        elif not isinstance(raw[key], bool):
            raise ImcSimError(f"{sub} = {raw[key]!r} must be true or false")
        else:
            out[key] = raw[key]
    return out


def _check_choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ImcSimError(f"{where} = {value!r} is not one of {', '.join(choices)}")
    return value


def profile_from_dict(raw: Any, path: str = "<dict>") -> DeviceProfile:
    """Validate a parsed YAML document; raises :class:`ImcSimError` naming the first bad field."""
    if not isinstance(raw, dict):
        raise ImcSimError(f"profile {path}: expected a mapping of fields, got {type(raw).__name__}")
    unknown = sorted_keys(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ImcSimError(f"{_where(path, unknown[0])} is not a profile field (known: {', '.join(TOP_KEYS)})")
    for key in ("name", "description", "source", "model"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ImcSimError(f"{_where(path, key)} is missing or not text")
    if "/" in raw["name"] or "\\" in raw["name"]:
        raise ImcSimError(f"{_where(path, 'name')} = {raw['name']!r} holds a path separator; the name "
                          "becomes part of file names (device-NAME.png)")
    model = _check_choice(raw["model"], tuple(FAMILIES), _where(path, "model"))
    family = FAMILIES[model]
    schema = family.schema
    raw_sections = {name: raw.get(name) for name in SECTIONS}
    devices_per_weight = 1
    if isinstance(raw_sections["conductance"], dict) and "devices_per_weight" in raw_sections["conductance"]:
        raw_sections["conductance"] = dict(raw_sections["conductance"])
        where = _where(path, "conductance.devices_per_weight")
        devices_per_weight = _check_num(DEVICES_PER_WEIGHT, raw_sections["conductance"].pop(
            "devices_per_weight"), where)
        if devices_per_weight > 1 and family.weight_level:
            raise ImcSimError(f"{where} = {devices_per_weight}: model {model!r} has no devices")
    sections = {
        name: _check_section(schema[name], raw_sections[name], _where(path, name), model,
                             ("devices_per_weight",) if name == "conductance" else ())
        for name in SECTIONS
    }
    cond = sections["conductance"]
    if "g_min" in cond and cond["g_min"] >= cond["g_max"]:
        raise ImcSimError(f"{_where(path, 'conductance.g_min')} = {cond['g_min']} must be below "
                          f"g_max = {cond['g_max']}")
    compensation = _check_choice(raw.get("compensation", "none"), COMPENSATIONS,
                                 _where(path, "compensation"))
    profile = DeviceProfile(
        name=raw["name"], description=raw["description"].strip(), source=raw["source"].strip(),
        model=model, compensation=compensation, periphery=_periphery(raw.get("periphery"), path),
        path=path, devices_per_weight=devices_per_weight, faults=_faults(raw.get("faults"), path, model),
        **sections,
    )
    if profile.periphery.ir_drop > 0 and "g_max" not in cond:
        raise ImcSimError(f"{_where(path, 'periphery.ir_drop')}: model {model!r} has no device "
                          "conductance (conductance.g_max) to draw the current IR drop needs")
    FAMILIES[model].check_profile(profile)
    return profile


def _periphery(raw: Any, path: str) -> Periphery:
    where = _where(path, "periphery")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ImcSimError(f"{where} must be a mapping of fields")
    known = set(PERIPHERY) | set(PERIPHERY_CHOICES)
    unknown = sorted_keys(set(raw) - known)
    if unknown:
        names = ", ".join(sorted(known))
        raise ImcSimError(f"{where}.{unknown[0]} is not a periphery field (known: {names})")
    values: dict[str, Any] = {}
    for key, spec in PERIPHERY.items():
        if key in ("dac_bits", "adc_bits") and raw.get(key) == "ideal":
            values[key] = None
        else:
            values[key] = _check_num(spec, raw[key], f"{where}.{key}") if key in raw else spec.default
    for key, (default, choices) in PERIPHERY_CHOICES.items():
        values[key] = _check_choice(raw.get(key, default), choices, f"{where}.{key}")
    if values["ir_drop"] > 0 and "tile_rows" not in raw:
        raise ImcSimError(f"{where}.ir_drop needs a tile size (IR drop grows with the rows along a "
                          "tile's wires): set periphery.tile_rows")
    if values["input_range"] == "static" and values["noise_management"] != "none":
        raise ImcSimError(f"{where}.input_range = static replaces noise management: set "
                          "periphery.noise_management to none")
    return Periphery(**values)


def _faults(raw: Any, path: str, model: str) -> Faults:
    where = _where(path, "faults")
    if raw is None:
        return Faults()
    if not isinstance(raw, dict):
        raise ImcSimError(f"{where} must be a mapping of fields")
    known = [f.name for f in dataclasses.fields(Faults)]
    unknown = sorted_keys(set(raw) - set(known))
    if unknown:
        raise ImcSimError(f"{where}.{unknown[0]} is not a faults field (known: {', '.join(known)})")
    faults = Faults(**{key: _check_num(FRACTION, value, f"{where}.{key}") for key, value in raw.items()})
    if faults.stuck_low + faults.stuck_high > 1:
        raise ImcSimError(f"{where}: stuck_low + stuck_high = {faults.stuck_low + faults.stuck_high:g} "
                          "is above 1")
    if (faults.stuck_low or faults.stuck_high) and FAMILIES[model].weight_level:
        raise ImcSimError(f"{where}: model {model!r} has no devices to be stuck (only dead_columns)")
    return faults


def shipped_profiles() -> dict[str, Path]:
    """Name -> file of every profile in ``device_models/``, sorted by name."""
    return {p.stem: p for p in sorted(PROFILE_DIR.glob("*.yaml"))}


def load_profile(name_or_path: str, changes: dict[str, Any] | None = None) -> DeviceProfile:
    """A shipped profile by name (``pcm``) or a user's YAML file by path; ``changes`` (fields as in
    the YAML, e.g. ``{"programming": {"scale": 2.0}}``) are merged into it, section by section,
    before it is validated, and named in the profile's ``path``."""
    shipped = shipped_profiles()
    if name_or_path in shipped:
        path = shipped[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ImcSimError(
                f"unknown device {name_or_path!r}: not a shipped profile ({', '.join(shipped)}) "
                "and not a YAML file"
            )
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except MalformedDocument as exc:
        raise ImcSimError(f"profile {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ImcSimError(f"profile {path}: not a text file") from exc
    if not changes:
        return profile_from_dict(raw, str(path))
    if not isinstance(raw, dict) or not isinstance(changes, dict):
        raise ImcSimError(f"profile {path}: changes are a mapping of fields, as in the YAML")
    return profile_from_dict(_merged(raw, changes), f"{path} with {changes}")


def _merged(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with ``changes`` merged in: a section (a mapping in both) field by field."""
    out = dict(raw)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out
