"""Own data: CSV / TSV / JSON-lines files with or without a header, label names or integers,
sentence pairs, hub datasets (offline: their errors and a stand-in), through train and deploy."""

from __future__ import annotations

import csv
import json
import sys
import types

import pytest
from conftest import NEGATIVE, POSITIVE

from imc_sim.checkpoint import read_checkpoint
from imc_sim.cli import main
from imc_sim.data import DataSource, load_dev, load_train
from imc_sim.errors import ImcSimError

ROWS = [("positive", s) for s in POSITIVE] + [("negative", s) for s in NEGATIVE]
ROWS += [("positive", 'said "great", then, twice'), ("negative", "a 'dull',\tflat one")]


def write(path, rows, header=("label", "sentence")):
    """``rows`` in the format that ``path``'s extension names (jsonl: objects with a header,
    arrays without)."""
    if path.suffix == ".jsonl":
        lines = ([json.dumps(dict(zip(header, r, strict=True))) for r in rows] if header else
                 [json.dumps(list(r)) for r in rows])
        path.write_text("\n".join(lines) + "\n")
        return path
    with path.open("w", newline="", encoding="utf-8") as fh:
        if path.suffix == ".tsv":
            fh.writelines("\t".join(map(str, r)) + "\n" for r in ([header] if header else []) + rows)
        else:
            writer = csv.writer(fh)
            writer.writerows(([header] if header else []) + rows)
    return path


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
@pytest.mark.parametrize("header", [True, False])
def test_every_format_with_and_without_header(tmp_path, ext, header):
    rows = [r for r in ROWS if not (ext == ".tsv" and "\t" in r[1])]  # TSV cells hold no tabs
    path = write(tmp_path / f"train{ext}", rows, ("label", "sentence") if header else None)
    columns = {} if header else {"header": False, "text_columns": ("1",), "label_column": "0"}
    source = DataSource(train_file=str(path), validation_file=str(path), **columns)
    task, train = load_train(source, "sst2")
    assert task.custom and task.labels == ("negative", "positive") and task.metric_name == "accuracy"
    assert train.texts == [(s,) for _, s in rows]
    assert train.labels == [int(label == "positive") for label, _ in rows]
    assert task.text_columns == (("sentence",) if header else (1,))
    assert load_dev(source, task).labels == train.labels
    assert load_dev(source, task, limit=3).texts == train.texts[:3]


def test_format_from_the_option_and_unknown_extensions(tmp_path):
    path = write(tmp_path / "train.tsv", ROWS[:8]).rename(tmp_path / "train.txt")
    with pytest.raises(ImcSimError, match=r"train.txt: cannot tell the format .*--file-format"):
        load_train(DataSource(train_file=str(path), validation_file=str(path)), "sst2")
    task, ex = load_train(DataSource(train_file=str(path), validation_file=str(path),
                                     file_format="tsv"), "sst2")
    assert len(ex.texts) == 8 and task.labels == ("negative", "positive")


def test_sentence_pairs_and_default_columns(tmp_path):
    pairs = [("entailment", "A man runs.", "A person moves."), ("contradiction", "It rains.", "It is dry."),
             ("entailment", "Cats purr.", "Animals make sounds.")]
    path = write(tmp_path / "nli.csv", pairs, ("label", "premise", "hypothesis"))
    source = DataSource(train_file=str(path), validation_file=str(path))
    task, ex = load_train(source, "sst2")  # no --text-column: both other columns, in file order
    assert ex.texts[0] == ("A man runs.", "A person moves.") and ex.labels == [1, 0, 1]
    assert task.text_columns == ("premise", "hypothesis") and task.labels == ("contradiction", "entailment")
    swapped = DataSource(train_file=str(path), validation_file=str(path),
                         text_columns=("hypothesis", "0"), label_column="label")
    with pytest.raises(ImcSimError, match="both the label and a text column"):
        load_train(swapped, "sst2")
    _, ex = load_train(DataSource(train_file=str(path), validation_file=str(path),
                                  text_columns=("hypothesis", "1")), "sst2")
    assert ex.texts[1] == ("It is dry.", "It rains.")


def test_row_numbers_are_no_default_text(tmp_path):
    csv_path = write(tmp_path / "train.csv", [("0", "good", "pos"), ("1", "bad", "neg")],
                     ("id", "review", "label"))
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"n": 0, "review": "good", "label": "pos"}\n'
                     '{"n": 1, "review": "bad", "label": "neg"}\n')
    for path in (csv_path, jsonl):
        task, ex = load_train(DataSource(train_file=str(path), validation_file=str(path)), "sst2")
        assert task.text_columns == ("review",) and ex.texts == [("good",), ("bad",)]


def test_integer_labels_sort_numerically_and_map_by_value(tmp_path):
    train = write(tmp_path / "train.jsonl", [(10, "a"), (2, "b"), (1, "c"), (2, "d")], ("stars", "text"))
    dev = write(tmp_path / "dev.csv", [("02", "x"), ("10", "y")], ("stars", "text"))
    source = DataSource(train_file=str(train), validation_file=str(dev), label_column="stars")
    task, ex = load_train(source, "sst2")
    assert task.labels == ("1", "2", "10") and ex.labels == [2, 1, 0, 1]
    assert load_dev(source, task).labels == [1, 2]


def test_validation_labels_map_onto_the_training_set(tmp_path):
    train = write(tmp_path / "train.csv", ROWS)
    source = DataSource(train_file=str(train), validation_file=str(train))
    task, _ = load_train(source, "sst2")
    dev = write(tmp_path / "dev.jsonl", [("positive", "x"), ("neutral", "y")])
    with pytest.raises(ImcSimError, match=r"dev.jsonl:2: label 'neutral' was not among the training "
                                          r"labels \(negative, positive\)"):
        load_dev(DataSource(validation_file=str(dev)), task)
    as_index = write(tmp_path / "index.csv", [("1", "x")])  # an integer is no name of this set
    with pytest.raises(ImcSimError, match="label '1' was not among"):
        load_dev(DataSource(validation_file=str(as_index)), task)


def fake_datasets(monkeypatch, load):
    module = types.ModuleType("datasets")
    module.load_dataset = load
    monkeypatch.setitem(sys.modules, "datasets", module)


class FakeSplit(list):
    """What ``datasets`` gives for one split: rows as dicts, column names, features."""

    column_names = ["idx", "text", "label"]
    features = {"idx": object(), "text": object(), "label": types.SimpleNamespace(names=["neg", "pos"])}


def test_hub_dataset_through_a_stand_in(monkeypatch):
    rows = FakeSplit([{"idx": 0, "text": "fine", "label": 1}, {"idx": 1, "text": "poor", "label": 0}])
    fake_datasets(monkeypatch, lambda name, config: {"train": rows, "test": FakeSplit(rows[:1])})
    source = DataSource(dataset="someone/reviews")
    task, ex = load_train(source, "sst2")
    assert task.labels == ("neg", "pos") and ex.texts == [("fine",), ("poor",)] and ex.labels == [1, 0]
    assert load_dev(source, task).labels == [1]  # no validation split: the test split


def test_hub_errors_offline(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    args = ["train", "--dataset", "imdb", "--out", str(tmp_path / "m.pt"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dataset imdb needs the datasets package" in err

    def offline(name, config):
        raise ConnectionError("Couldn't reach 'imdb' on the Hub (LocalEntryNotFoundError)\nmore")
    fake_datasets(monkeypatch, offline)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == ("imc-sim: error: could not load 'imdb' from the hub: Couldn't reach 'imdb' on the "
                   "Hub (LocalEntryNotFoundError)\n")
    assert not (tmp_path / "m.pt").exists()


# --- through the command line, on a tiny model ------------------------------------------------

def train_args(tmp_path, model_dir, train, dev, *extra):
    return ["train", "--model", str(model_dir), "--train-file", str(train), "--validation-file",
            str(dev), "--max-steps", "3", "--batch-size", "4", "--lr", "0.05", "--k", "4",
            "--out", str(tmp_path / "model.pt"), "--json", str(tmp_path / "metrics.json"), "--quiet",
            *extra]


@pytest.fixture(scope="module")
def own_checkpoint(tmp_path_factory, tiny_model_dir):
    """A GRASP checkpoint trained on a header-less TSV (label<TAB>sentence), labels as names."""
    tmp = tmp_path_factory.mktemp("own")
    rows = [r for r in ROWS if "\t" not in r[1]]
    train = write(tmp / "train.tsv", rows * 2, header=None)
    dev = write(tmp / "dev.tsv", rows, header=None)
    assert main(train_args(tmp, tiny_model_dir, train, dev, "--no-header", "--text-column", "1",
                           "--label-column", "0")) == 0
    return tmp


def test_label_names_round_trip_through_the_checkpoint(own_checkpoint, tmp_path):
    meta = read_checkpoint(own_checkpoint / "model.pt")
    assert meta["task"] == "custom" and meta["labels"] == ["negative", "positive"]
    assert meta["task_spec"]["text_columns"] == [1] and meta["task_spec"]["has_header"] is False
    trained = json.loads((own_checkpoint / "metrics.json").read_text())
    # the same dev examples as JSON lines with named columns, positive first: names, not order,
    # decide the classes, so deploy's digital score is training's
    rows = [r for r in ROWS if "\t" not in r[1]][::-1]
    dev = write(tmp_path / "dev.jsonl", [(s, label) for label, s in rows], ("review", "sentiment"))
    assert main(["deploy", str(own_checkpoint / "model.pt"), "--validation-file", str(dev),
                 "--text-column", "review", "--label-column", "sentiment", "--device", "ideal",
                 "--drift", "1d", "--seeds", "1", "--json", str(tmp_path / "out.json"), "--quiet"]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["task"] == "custom" and result["dev_examples"] == len(rows)
    assert result["digital_metric"] == trained["metric"]
    assert result["times"][0]["metrics"] == [trained["metric"]]
    # deploy defaults to training's columns and header: the header-less TSV needs no options
    assert main(["compare", str(own_checkpoint / "model.pt"), "--validation-file",
                 str(own_checkpoint / "dev.tsv"), "--device", "ideal", "--drift", "1d", "--seeds", "1",
                 "--json", str(tmp_path / "cmp.json"), "--quiet"]) == 0
    compared = json.loads((tmp_path / "cmp.json").read_text())
    assert compared["checkpoints"][0]["digital_metric"] == trained["metric"]


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert err.startswith("imc-sim: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


BAD_TRAINING = {
    "missing column": (ROWS, ("label", "sentence"), ["--text-column", "review"],
                       ["no column 'review' (columns: label, sentence)"]),
    "mixed label types": ([("positive", "a"), ("0", "b")], ("label", "sentence"), [],
                          ["labels mix integers and names ('0' at line 3, 'positive' at line 2)"]),
    "header-less file asked for a name": (ROWS, None, ["--no-header", "--text-column", "sentence",
                                                       "--label-column", "0"],
                                          ["has no header row (--no-header)", "not the name 'sentence'"]),
    "header-less file read as if headed": (ROWS, None, ["--text-column", "sentence"],
                                           ["no column 'label' (columns: positive, a charming",
                                            "needs --no-header"]),
    "one label only": ([("positive", "a"), ("positive", "b")], ("label", "sentence"), [],
                       ["only one label ('positive')"]),
}


@pytest.mark.parametrize("case", list(BAD_TRAINING))
def test_bad_training_files_fail_in_one_line(case, tmp_path, tiny_model_dir, capsys):
    rows, header, extra, fragments = BAD_TRAINING[case]
    train = write(tmp_path / "train.csv", rows, header)
    assert main(train_args(tmp_path, tiny_model_dir, train, train, *extra)) == 2
    one_line_error(capsys, *fragments)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_empty_and_non_utf8_files_and_unseen_labels(tmp_path, tiny_model_dir, capsys):
    good = write(tmp_path / "good.csv", ROWS)
    cases = {
        "empty.csv": (b"", ["empty.csv: no examples"]),
        "header-only.csv": (b"label,sentence\n", ["no examples (only a header)"]),
        "latin1.csv": ("label,sentence\npositive,caf\u00e9 cr\u00e8me\n".encode("latin-1"),
                       ["latin1.csv:2: not UTF-8 text (byte 0xe9)"]),
    }
    for name, (content, fragments) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert main(train_args(tmp_path, tiny_model_dir, tmp_path / name, good)) == 2
        one_line_error(capsys, *fragments)
    unseen = write(tmp_path / "dev.csv", [("positive", "x"), ("neutral", "y")])
    assert main(train_args(tmp_path, tiny_model_dir, good, unseen)) == 2
    one_line_error(capsys, "dev.csv:3: label 'neutral' was not among the training labels")
    assert not (tmp_path / "model.pt").exists()


def test_bad_data_options(tmp_path, tiny_model_dir, own_checkpoint, tiny_glue, capsys):
    good = write(tmp_path / "good.csv", ROWS)
    out = str(tmp_path / "model.pt")
    for argv, fragment in [
        (["train", "--train-file", str(good), "--out", out], "need both --train-file and --validation-file"),
        (["train", "--data-dir", str(tiny_glue), "--text-column", "sentence", "--out", out],
         "--text-column is for own data"),
        (["train", "--train-file", str(good), "--validation-file", str(good), "--dataset", "imdb",
          "--out", out], "exclude each other"),
        (["train", "--train-file", str(good), "--validation-file", str(good), "--text-column", "a",
          "b", "c", "--out", out], "one column, or two for sentence pairs; got 3"),
        (["deploy", str(own_checkpoint / "model.pt"), "--device", "ideal", "--seeds", "1"],
         "trained on own data (labels negative, positive): pass --validation-file"),
        (["deploy", str(own_checkpoint / "model.pt"), "--device", "ideal", "--seeds", "1",
          "--validation-file", str(own_checkpoint / "dev.tsv"), "--text-column", "1", "1"],
         "--text-column: the checkpoint reads 1 text column(s) (1); got 2"),
        (["deploy", str(own_checkpoint / "model.pt"), "--device", "ideal", "--seeds", "1", "--no-header"],
         "--header/--no-header is for own data: pass --validation-file or --dataset"),  # no --train-file
        (["multitask", str(own_checkpoint / "model.pt"), "--device", "ideal", "--seeds", "1"],
         f"multitask reads GLUE dev sets from --data-dir; {own_checkpoint / 'model.pt'} was trained on its "
         "own data files: deploy it on its own"),
    ]:
        assert main(argv) == 2
        one_line_error(capsys, fragment)
    assert not (tmp_path / "model.pt").exists()
