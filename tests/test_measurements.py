"""Measured conductances read from CSV and JSON lines (imc_sim.devices.measurements): what is read,
which reads are one device, and the one-line message for each kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ascii_locale

from imc_sim.devices.measurements import NEEDED, Measurements, read_measurements
from imc_sim.errors import ImcSimError

# (device, g_target uS, time s, g_read uS): a and b share a target and are listed in another order
# at 60 s; device c is off: target 0, read 0 (zero is not negative)
READS = [("a", 5.0, 1.0, 4.9), ("b", 5.0, 1.0, 4.8), ("c", 0.0, 1.0, 0.0),
         ("b", 5.0, 60.0, 4.6), ("a", 5.0, 60.0, 4.7), ("c", 0.0, 60.0, 0.0)]
COLUMNS = ("device", "g_target", "time", "g_read")
UNNAMED = [row[1:] for row in READS]  # the same reads without the device column


def csv_text(reads: list[tuple], columns: tuple[str, ...] = COLUMNS) -> str:
    return "".join(",".join(map(str, row)) + "\n" for row in [columns, *reads])


def jsonl_text(reads: list[tuple], columns: tuple[str, ...] = COLUMNS) -> str:
    """One object per line, with blank lines before, between and after them."""
    lines = [json.dumps(dict(zip(columns, row, strict=True))) for row in reads]
    return "\n  \n" + "\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def assert_reads(m: Measurements, device: list[int], reads: list[tuple], source: Path) -> None:
    """``m`` holds ``reads`` (their id column aside) in file order, devices numbered ``device``."""
    np.testing.assert_array_equal(m.device, device)
    assert m.device.dtype == np.int64
    for column, values in zip((m.g_target, m.time, m.g_read), list(zip(*reads, strict=True))[-3:],
                              strict=True):
        np.testing.assert_array_equal(column, values)
    assert m.source == str(source)


@pytest.mark.parametrize("name, text", [
    ("reads.csv", csv_text(READS)),
    ("reads.jsonl", jsonl_text(READS)),
    ("excel.csv", "\ufeff" + csv_text(READS)),  # the byte-order mark of a spreadsheet's UTF-8 CSV
    ("bom.jsonl", "\ufeff" + jsonl_text(READS)),
], ids=["csv", "jsonl", "csv-bom", "jsonl-bom"])
def test_reads_with_device_ids(name: str, text: str, tmp_path: Path) -> None:
    """Devices are numbered in order of first appearance, whatever order each time lists them in."""
    path = write(tmp_path, name, text)
    m = read_measurements(path)
    assert_reads(m, [0, 1, 2, 1, 0, 2], READS, path)
    assert m.n_devices == 3


@pytest.mark.parametrize("name, text", [("reads.csv", csv_text(UNNAMED, COLUMNS[1:])),
                                        ("reads.jsonl", jsonl_text(UNNAMED, COLUMNS[1:]))],
                         ids=["csv", "jsonl"])
def test_without_device_ids_the_kth_read_of_a_target_and_time_is_device_k(name: str, text: str,
                                                                         tmp_path: Path) -> None:
    """Without ids the order is all there is: the first read of (5 uS, 60 s) is device 0 (a's
    first read at 1 s), though it is b's."""
    path = write(tmp_path, name, text)
    assert_reads(read_measurements(path), [0, 1, 2, 0, 1, 2], UNNAMED, path)


def test_a_single_read_is_one_device(tmp_path: Path) -> None:
    path = write(tmp_path, "one.csv", "g_target,time,g_read\n5,1,4.9\n")
    m = read_measurements(path)
    assert m.n_devices == 1 and m.g_read.tolist() == [4.9]


def test_utf8_is_read_whatever_the_locale(tmp_path: Path) -> None:
    """Device ids beyond ASCII, read under an ASCII locale, as on a system whose default encoding
    is not UTF-8."""
    path = write(tmp_path, "reads.csv", csv_text([("µ-1", 5.0, 1.0, 4.9), ("µ-2", 5.0, 1.0, 4.8)]))
    with ascii_locale():
        assert read_measurements(path).n_devices == 2


BAD = {
    "no file": (None, "measurements {path}: no such file"),
    "binary": (b"\xff\xd8\xff\xe0 a JPEG", "{path}:1: not UTF-8 text (byte 0xff); save the file as UTF-8"),
    "header only": ("g_target,time,g_read\n", f"measurements {{path}}: no rows (need columns {NEEDED})"),
    "empty": ("", f"measurements {{path}}: no rows (need columns {NEEDED})"),
    "not JSON": ('\n{"g_target": 5, "time": 1, "g_read": 4.9}\n{g_target: 5}\n',
                 "measurements {path}: line 3 is not JSON "
                 "(Expecting property name enclosed in double quotes at column 2)"),
    "not an object": ('{"g_target": 5, "time": 1, "g_read": 4.9}\n\n[5, 1, 4.9]\n',
                      "measurements {path}: line 3 is not a JSON object"),
    "negative time": ("g_target,time,g_read\n5,1,4.9\n5,-1,4.9\n",
                      "measurements {path}: line 3: column time = -1 s is negative"),
    "negative target": ('{"g_target": -2.5, "time": 1, "g_read": 4.9}\n',
                        "measurements {path}: line 1: column g_target = -2.5 uS is negative"),
    "empty cell": ("g_target,time,g_read\n5,1,4.9\n5,60,\n",
                   f"measurements {{path}}: line 3: missing column g_read (need {NEEDED})"),
    "two missing": ('{"g_target": 5, "device": "a"}\n',
                    f"measurements {{path}}: line 1: missing column time, g_read (need {NEEDED})"),
    "two targets": (csv_text([("a", 5.0, 1.0, 4.9), ("a", 7.0, 60.0, 6.8)]),
                    "measurements {path}: a device has two targets (5 and 7 uS); one target per device"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_measurements_one_line_message(case: str, tmp_path: Path) -> None:
    """The whole message: the file, the line (as an editor numbers it), the column and its unit."""
    text, message = BAD[case]
    path = tmp_path / "reads.txt" if text is None else write(tmp_path, "reads.txt", text)
    with pytest.raises(ImcSimError) as exc:
        read_measurements(path)
    assert str(exc.value) == message.format(path=path)


@pytest.mark.parametrize("first, second, same", [
    (0.3, 0.1 + 0.2, True),  # printed by two programs: 0.3 and 0.30000000000000004
    (0.0, 1e-9, True),  # below 1 uS the tolerance is 1e-9 uS, inclusive
    (0.5, 0.5 + 1.5e-9, False),
    (10.0, 10.0 + 5e-9, True),  # above 1 uS it is relative: 1e-9 of the target
    (1000.0, 1000.0 + 2e-6, False),
])
def test_a_device_has_one_target_up_to_rounding(first: float, second: float, same: bool,
                                                tmp_path: Path) -> None:
    path = write(tmp_path, "reads.csv", csv_text([("a", first, 1.0, 0.2), ("a", second, 60.0, 0.1)]))
    if same:
        assert read_measurements(path).n_devices == 1
    else:
        with pytest.raises(ImcSimError, match=r"a device has two targets .*; one target per device$"):
            read_measurements(path)
