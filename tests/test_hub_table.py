"""A hub dataset read as a table (`data/hub.py`), through a stand-in `datasets` module: the split
chosen, class labels as their names, row numbers for messages, and every refusal whole."""

import sys
import types

import pytest

from imc_sim.data.hub import hub_table
from imc_sim.errors import ImcSimError


class Split(list):
    """One split as ``datasets`` gives it: rows as dicts, column names, features."""

    column_names = ["text", "label"]
    features = {"text": object(), "label": types.SimpleNamespace(names=["neg", "pos"])}


ROWS = [{"text": "fine", "label": 1}, {"text": "poor", "label": 0}, {"text": "unread", "label": -1}]


def stand_in(monkeypatch, load):
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load))


def test_the_training_split_as_a_table(monkeypatch):
    stand_in(monkeypatch, lambda name, config: {"train": Split(ROWS), "validation": Split(ROWS[:1])})
    table = hub_table("someone/reviews", None, "train")
    assert table.where == "someone/reviews:train" and table.names == ["text", "label"]
    # class labels by name; -1 (GLUE's unlabelled test rows) kept as it is, for the label check
    assert table.rows == [["fine", "pos"], ["poor", "neg"], ["unread", -1]]
    assert table.lines == [1, 2, 3] and table.cell_where(1) == "someone/reviews:train:2"


@pytest.mark.parametrize(("splits", "chosen"), [(("validation", "test"), "validation"),
                                                (("test",), "test")])
def test_the_dev_split_is_validation_else_test(monkeypatch, splits, chosen):
    stand_in(monkeypatch, lambda name, config: {s: Split(ROWS[:1]) for s in ("train", *splits)})
    assert hub_table("d", None, "dev").where == f"d:{chosen}"


def test_a_dataset_without_the_split(monkeypatch):
    stand_in(monkeypatch, lambda name, config: {"train": Split(ROWS), "unsupervised": Split()})
    with pytest.raises(ImcSimError) as info:
        hub_table("someone/reviews", None, "dev")
    assert str(info.value) == ("hub dataset 'someone/reviews' has no validation or test split "
                               "(it has train, unsupervised)")
    stand_in(monkeypatch, lambda name, config: {"test": Split(ROWS)})
    with pytest.raises(ImcSimError) as info:
        hub_table("d", None, "train")
    assert str(info.value) == "hub dataset 'd' has no train split (it has test)"


def test_without_the_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImcSimError) as info:
        hub_table("imdb", None, "train")
    assert str(info.value) == ("--dataset imdb needs the datasets package (pip install 'imc-sim[hub]') "
                               "and a network; or give your own --train-file/--validation-file")
    with pytest.raises(ImcSimError, match="or give your own --validation-file$"):
        hub_table("imdb", None, "dev")  # evaluation's file options (deploy, compare, sensitivity)


def raising(exc):
    def load(name, config):
        raise exc
    return load


def test_a_hub_error_is_cut_to_its_first_line_and_200_characters(monkeypatch):
    stand_in(monkeypatch, raising(ValueError("  " + "x" * 250 + "\nsecond line")))
    with pytest.raises(ImcSimError) as info:
        hub_table("d", None, "train")
    assert str(info.value) == "could not load 'd' from the hub: " + "x" * 200


def test_a_hub_error_without_a_message_is_named_by_its_type(monkeypatch):
    stand_in(monkeypatch, raising(TimeoutError(" ")))
    with pytest.raises(ImcSimError) as info:
        hub_table("d", "cfg", "train")
    assert str(info.value) == "could not load 'd' from the hub: TimeoutError"
