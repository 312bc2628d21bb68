"""``load_train`` and ``load_dev`` on own files (imc_sim.data.source): the training options named
in training's errors, and the example limit applied to own files (the survivors of session 29's
mutation run of data/source.py)."""

from __future__ import annotations

import pytest

from imc_sim.data.source import DataSource, load_train
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
