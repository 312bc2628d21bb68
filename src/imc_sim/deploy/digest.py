"""Content hashes of a sweep plan's inputs (SHA-256, hex): of a file's bytes, or of JSON data; the
first file given twice among several, and a list of files that is one path."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imc_sim.errors import ImcSimError

AnyPath = str | os.PathLike[str]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    """The hash of ``value`` as canonical JSON (sorted keys, no spaces)."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def check_path_list(paths: Sequence[AnyPath]) -> None:
    """One line where ``paths`` is one path rather than a list of them (a string would be read
    character by character)."""
    if isinstance(paths, str | os.PathLike):
        raise ImcSimError(f"give a list of checkpoint files, not one path ({os.fspath(paths)!r})")


def first_repeat(paths: Sequence[AnyPath]) -> tuple[AnyPath, AnyPath] | None:
    """The first two of ``paths`` whose files hold the same bytes (one file named twice, or a
    copy), or None."""
    seen: dict[str, AnyPath] = {}
    for path in paths:
        digest = sha256_bytes(Path(path).read_bytes())
        if digest in seen:
            return seen[digest], path
        seen[digest] = path
    return None
