"""``load_train`` and ``load_dev`` on own files (imc_sim.data.source): the training options named
in training's errors, and the example limit applied to own files (the survivors of session 29's
mutation run of data/source.py)."""

from __future__ import annotations

import pytest

from imc_sim.data.source import DataSource, load_dev, load_train
from imc_sim.errors import ImcSimError


@pytest.fixture
def own_files(tmp_path):
    rows = "text,label\n" + "".join(f"sentence {i},{'yes' if i % 2 else 'no'}\n" for i in range(6))
    for name in ("train.csv", "dev.csv"):
        (tmp_path / name).write_text(rows)
    return DataSource(train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "dev.csv"))


def test_training_errors_name_the_training_file_options(own_files):
    message = r"^--dataset and --train-file/--validation-file exclude each other$"
    with pytest.raises(ImcSimError, match=message):
        load_train(DataSource(train_file=own_files.train_file, validation_file=own_files.validation_file,
                              dataset="glue"), "sst2")


def test_the_limit_applies_to_own_training_files(own_files):
    task, examples = load_train(own_files, "sst2", limit=2)
    assert len(examples.labels) == 2 and task.labels == ("no", "yes")
    assert len(load_train(own_files, "sst2")[1].labels) == 6
    with pytest.raises(ImcSimError, match="at least 1"):
        load_train(own_files, "sst2", limit=0)


@pytest.mark.parametrize("source, training, message", [
    (DataSource(data_dir="glue", validation_file="dev.csv"), False,
     "--data-dir (GLUE's layout) and own data (--validation-file, --dataset) exclude each other"),
    (DataSource(data_dir="glue", dataset="imdb"), True,
     "--data-dir (GLUE's layout) and own data (--train-file/--validation-file, --dataset) exclude each "
     "other"),
    (DataSource(dataset_config="plain_text"), False, "--dataset-config needs --dataset"),
    (DataSource(train_file="train.csv"), True,
     "own files need both --train-file and --validation-file (the dev set that training reports)"),
    (DataSource(label_column="sentiment"), False,
     "--label-column is for own data: pass --validation-file or --dataset"),
    (DataSource(file_format="csv"), True,
     "--file-format is for own data: pass --train-file/--validation-file or --dataset"),
], ids=["folder and own file", "folder and hub", "config alone", "training file alone",
        "label column on glue", "format on glue"])
def test_options_that_contradict_each_other_are_named(source, training, message):
    """Session 31's mutation run: these messages' words were not held by any test."""
    with pytest.raises(ImcSimError) as info:
        source.check(training)
    assert str(info.value) == message


def test_a_dev_file_with_other_text_columns_names_the_trained_ones(tmp_path):
    rows = "a,b,label\n" + "".join(f"x {i},y {i},{i % 2}\n" for i in range(6))
    (tmp_path / "train.csv").write_text(rows)
    pair = DataSource(train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "train.csv"),
                      text_columns=("a", "b"))
    task, _ = load_train(pair, "sst2")
    message = r"^--text-column: the checkpoint reads 2 text column\(s\) \(a, b\); got 1$"
    with pytest.raises(ImcSimError, match=message):
        load_dev(DataSource(validation_file=str(tmp_path / "train.csv"), text_columns=("a",)), task)


def test_a_training_file_of_one_label_is_named(tmp_path):
    (tmp_path / "one.csv").write_text("text,label\n" + "".join(f"s {i},yes\n" for i in range(4)))
    source = DataSource(train_file=str(tmp_path / "one.csv"), validation_file=str(tmp_path / "one.csv"))
    with pytest.raises(ImcSimError, match=f"^{tmp_path / 'one.csv'}: only one label"):
        load_train(source, "sst2")
