"""Atomic file writes: a reader sees the old file or the complete new one, never half of it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from imc_sim.errors import ImcSimError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike[str], value: object) -> None:
    """Write ``value`` as indented, strict JSON (no NaN or Infinity tokens) to ``path`` atomically."""
    try:
        text = json.dumps(value, indent=2, allow_nan=False)
    except ValueError:
        raise ImcSimError(f"{path} not written: the results hold NaN or infinite numbers") from None
    write_text_atomic(path, text + "\n")


def check_writable(path: str | os.PathLike[str] | None, option: str) -> None:
    """Raise :class:`ImcSimError` now if ``path`` (the value of ``option``; None: not asked for)
    could not be written later: it names a folder or a device, or no file can be created in the
    nearest existing folder above it (a file, no permission, a read-only or pseudo file system).
    Commands call it before their long work, so that an hour of training or deployment is not
    lost to a typo in an output path."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ImcSimError(f"{option} {path} is a folder; give a file name")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ImcSimError(f"{option} {path}: {parent} is a file, not a folder")
    if target.exists() and not target.is_file():
        raise ImcSimError(f"{option} {path} is not a regular file; give a file name")
    try:  # the write creates a temporary file beside the target: try that now
        fd, probe = tempfile.mkstemp(prefix=".imc-sim-probe.", dir=parent)
    except PermissionError:
        raise ImcSimError(f"{option} {path}: no permission to write in {parent}") from None
    except OSError as exc:
        raise ImcSimError(f"{option} {path}: cannot create a file in {parent} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_outputs(outputs: Mapping[str, str | os.PathLike[str] | None],
                  inputs: Iterable[tuple[str, str | os.PathLike[str]]] = ()) -> None:
    """:func:`check_writable` for each output (option -> path; None: not asked for), and refuse an
    output that names the same file as an input (what, path) or an earlier output: the later write
    would replace that file."""
    taken: dict[str, str] = {}
    for what, path in inputs:
        taken.setdefault(os.path.realpath(path), what)
    for option, path in outputs.items():
        check_writable(path, option)
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in taken:
            raise ImcSimError(f"{option} {path} names the same file as {taken[key]}; give another file name")
        taken[key] = option
