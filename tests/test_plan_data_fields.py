"""A sweep plan's data fields that mutation testing found unchecked (docs/mutation.md): what a unit's
key records of the dev set, the GLUE file a worker is shipped, the hub's dev set, a format or
header the plan names, columns by 0-based index, the first eval_limit examples read as a unit reads
them, and the exact one-line refusals of bad fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import NEGATIVE, POSITIVE, file_sha256

from imc_sim.data import DataSource, load_dev
from imc_sim.deploy.plan_data import load_data
from imc_sim.errors import ImcSimError
from imc_sim.tasks import get_task

SST2 = get_task("sst2")
ROWS = [(s, 1) for s in POSITIVE] + [(s, 0) for s in NEGATIVE]


@pytest.fixture
def own_csv(tmp_path) -> Path:
    """The tiny SST-2 dev set as a CSV with the columns ``review`` and ``sentiment``."""
    path = tmp_path / "dev.csv"
    path.write_text("review,sentiment\n" + "".join(f"{s},{label}\n" for s, label in ROWS))
    return path


def test_glue_layout_key_and_the_file_a_worker_is_shipped(tiny_glue, tmp_path):
    ref = load_data({"data_dir": str(tiny_glue)}, tmp_path, [SST2], None)
    dev = tiny_glue / "SST-2" / "dev.tsv"
    assert ref.identity() == {"task": "sst2", "dev_sha256": file_sha256(dev)}
    worker = tmp_path / "worker"
    local, source = ref.shipped(worker)
    assert local == worker / "SST-2" / "dev.tsv" and source == DataSource(data_dir=str(worker))
    local.parent.mkdir(parents=True)
    local.write_bytes(dev.read_bytes())
    assert load_dev(source, SST2) == load_dev(ref.source, SST2)


def test_no_data_dir_means_the_hub_no_file_to_ship(tmp_path, monkeypatch):
    monkeypatch.delenv("IMC_SIM_DATA", raising=False)
    ref = load_data({}, tmp_path, [SST2], None)
    assert ref.identity() == {"task": "sst2", "dev_sha256": None}
    assert ref.source == DataSource() and ref.dev_file is None
    with pytest.raises(ValueError) as exc:
        ref.shipped(tmp_path)
    assert str(exc.value) == "the hub's dev set is not a file to ship"


def test_file_format_reads_a_file_whose_extension_does_not_say(own_csv, tmp_path):
    dev = tmp_path / "dev.txt"
    dev.write_bytes(own_csv.read_bytes())
    ref = load_data({"validation_file": "dev.txt", "file_format": "csv", "text_column": "review",
                     "label_column": "sentiment"}, tmp_path, [SST2], None)
    assert ref.identity() == {"task": "sst2", "dev_sha256": file_sha256(dev), "own_data": {
        "file_format": "csv", "header": None, "text_column": ["review"], "label_column": "sentiment"}}
    assert load_dev(ref.source, SST2) == load_dev(DataSource(validation_file=str(own_csv),
                                                             text_columns=("review",),
                                                             label_column="sentiment"), SST2)


def test_headerless_file_with_columns_by_index_from_zero(tmp_path):
    dev = tmp_path / "dev.csv"
    dev.write_text("".join(f"{label},{s}\n" for s, label in ROWS))
    ref = load_data({"validation_file": "dev.csv", "header": False, "text_column": 1, "label_column": 0},
                    tmp_path, [SST2], None)
    assert ref.identity()["own_data"] == {"file_format": "csv", "header": False, "text_column": ["1"],
                                          "label_column": "0"}
    examples = load_dev(ref.source, SST2)
    assert examples.texts == [(s,) for s, _ in ROWS] and examples.labels == [label for _, label in ROWS]


def test_eval_limit_reads_only_the_first_examples_as_a_unit_does(tmp_path):
    """A row past eval_limit that a unit never reads does not refuse the plan (nor pass unread
    without the limit)."""
    glue = tmp_path / "glue"
    (glue / "SST-2").mkdir(parents=True)
    (glue / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngreat fun\t1\na dull mess\t0\ncut short\n")
    own = tmp_path / "dev.jsonl"
    rows = [{"review": "great fun", "sentiment": 1}, {"review": "a dull mess", "sentiment": 0},
            {"sentiment": 1}]
    own.write_text("".join(json.dumps(r) + "\n" for r in rows))
    glue_raw = {"data_dir": "glue"}
    own_raw = {"validation_file": "dev.jsonl", "text_column": "review", "label_column": "sentiment"}
    for raw in (glue_raw, own_raw):
        assert load_data(raw, tmp_path, [SST2], 2).task == SST2
    with pytest.raises(ImcSimError, match="expected more columns"):
        load_data(glue_raw, tmp_path, [SST2], None)
    with pytest.raises(ImcSimError, match="no column 'review'"):
        load_data(own_raw, tmp_path, [SST2], None)


OWN = {"validation_file": "dev.csv", "text_column": "review", "label_column": "sentiment"}


@pytest.mark.parametrize("raw, message", [
    ({"data_dir": 5}, "data_dir must be a path, got 5"),
    ({"validation_file": ""}, "validation_file must be a path, got ''"),
    ({**OWN, "data_dir": "glue"},
     "data_dir (GLUE's layout) and validation_file (own data) exclude each other"),
    ({**OWN, "text_column": 1.5}, "text_column must be a column name or 0-based index, got 1.5"),
    ({**OWN, "text_column": ""}, "text_column must be a column name or 0-based index, got ''"),
    ({**OWN, "text_column": ["review", True]},
     "text_column must be a column name or 0-based index, got True"),
    ({**OWN, "label_column": True}, "label_column must be a column name or 0-based index, got True"),
    ({**OWN, "label_column": -1}, "label_column = -1 must be a 0-based column index (>= 0)"),
    ({**OWN, "file_format": "xlsx"}, "file_format must be one of csv, tsv, jsonl, got 'xlsx'"),
])
def test_bad_field_one_whole_line(raw, message, own_csv, tmp_path):
    with pytest.raises(ImcSimError) as exc:
        load_data(raw, tmp_path, [SST2], None)
    assert str(exc.value) == message


def test_missing_glue_dev_set_names_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImcSimError) as exc:
        load_data({"data_dir": "empty"}, tmp_path, [SST2], None)
    assert str(exc.value) == f"no dev set for sst2 at {tmp_path / 'empty' / 'SST-2' / 'dev.tsv'}"


@pytest.mark.parametrize("raw, message", [
    ({}, "language-model (--task lm) checkpoints need validation_file: held-out plain text, one passage "
         "per line"),
    ({"validation_file": "heldout.txt", "header": False},
     "header is for classification data; a language model reads the plain text validation_file"),
])
def test_bad_language_model_data_one_whole_line(raw, message, tmp_path):
    (tmp_path / "heldout.txt").write_text("a passage\nanother passage\n")
    with pytest.raises(ImcSimError) as exc:
        load_data(raw, tmp_path, [get_task("lm")], None)
    assert str(exc.value) == message
