"""Parsing the YAML and JSON documents users hand in (profiles, plans, stores, data, measurements):
every way a document can fail to parse is one :class:`MalformedDocument` whose text says why."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import yaml

from imc_sim.errors import ImcSimError


class MalformedDocument(ValueError):
    """A document that does not parse; ``str()`` is the reason, e.g. 'malformed YAML at line 3'."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a mapping key written twice (safe_load keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' merges, its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: the constructor below refuses it
                continue
            if first is not None:
                where = f"lines {first} and {line}" if first != line else f"line {line}"
                raise MalformedDocument(f"key {key!r} written twice, at {where}")
            lines[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> object:
    """``yaml.safe_load`` of ``text``; nesting deeper than Python's recursion limit and a mapping
    key written twice are malformed too."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MalformedDocument("malformed YAML" + (f" at line {mark.line + 1}" if mark else "")) from None
    except RecursionError:
        raise MalformedDocument("YAML nested too deeply") from None
    except ValueError as exc:  # an integer over Python's digit limit, a date such as 2020-02-30
        raise MalformedDocument(f"malformed YAML ({_first_clause(exc)})") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object from its ``pairs``, refusing a key written twice (``json.loads`` keeps the last)."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedDocument(f"key {key!r} written twice in one object")
        out[key] = value
    return out


def parse_json(text: str) -> object:
    """``json.loads`` of ``text``; deep nesting, integers over Python's digit limit and a key
    written twice in one object are malformed."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno} column {exc.colno}" if "\n" in text.rstrip() else f"column {exc.colno}"
        raise MalformedDocument(f"not JSON ({exc.msg} at {at})") from None
    except RecursionError:
        raise MalformedDocument("JSON nested too deeply") from None
    except ValueError as exc:
        raise MalformedDocument(f"not JSON ({_first_clause(exc)})") from None


def read_json_object(path: str | os.PathLike[str], what: str) -> dict:
    """The JSON object in the file at ``path``; :class:`ImcSimError` naming the file when it is
    not text, not JSON, or not an object (then ``what`` it should have been, e.g. 'an imc-sim
    result')."""
    try:
        raw = parse_json(Path(path).read_text(encoding="utf-8"))
    except MalformedDocument as exc:
        raise ImcSimError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise ImcSimError(f"{path}: not a text file") from None
    if not isinstance(raw, dict):
        raise ImcSimError(f"{path} is not {what} (a JSON object)")
    return raw


def _first_clause(exc: ValueError) -> str:
    """The error's own words without the advice Python appends after a ';' (to raise a limit)."""
    return str(exc).split(";")[0]


def real_number(value: object) -> float | None:
    """``value`` as a finite float when it is a JSON/YAML number (not a bool) that a float holds;
    otherwise None (text, NaN, inf, or an integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


def sorted_keys(keys: Iterable[object]) -> list[str]:
    """Mapping keys as text, sorted, whatever their YAML types (``1: 2`` beside ``foo: 3``)."""
    return sorted(str(k) for k in keys)
