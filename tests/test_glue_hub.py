"""GLUE from the Hugging Face hub (offline, through a stand-in for ``datasets``): the split asked for,
the text columns, the example limit, and labels in the task's order whatever order the hub uses."""

from __future__ import annotations

import sys
import types

import pytest

from imc_sim import data
from imc_sim.errors import ImcSimError
from imc_sim.tasks import get_task

MNLI_HUB_NAMES = ["entailment", "neutral", "contradiction"]  # glue/mnli's ClassLabel on the hub
MNLI_ROWS = [("A man runs.", "A person moves.", "entailment"), ("It rains.", "It is dry.", "contradiction"),
             ("Cats purr.", "Cats are loud.", "neutral"), ("Dogs bark.", "Dogs make noise.", "entailment")]


class HubSplit(list):
    """One split as ``datasets.load_dataset(..., split=...)`` gives it: rows as dicts."""

    def __init__(self, rows, columns, label_names=None):
        super().__init__(rows)
        self.column_names = columns
        self.features = {c: types.SimpleNamespace() for c in columns}
        if label_names is not None:
            self.features["label"] = types.SimpleNamespace(names=label_names)

    def select(self, indices):
        return HubSplit([self[i] for i in indices], self.column_names)


@pytest.fixture
def hub(monkeypatch):
    """A stand-in ``datasets`` serving ``hub.splits[(config, split)]``; ``hub.calls`` records requests."""
    state = types.SimpleNamespace(splits={}, calls=[])

    def load_dataset(name, config, split):
        state.calls.append((name, config, split))
        return state.splits[config, split]

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    return state


def mnli_split(rows):
    columns = ["premise", "hypothesis", "label", "idx"]
    return HubSplit([{"premise": p, "hypothesis": h, "label": MNLI_HUB_NAMES.index(g), "idx": i}
                     for i, (p, h, g) in enumerate(rows)], columns, MNLI_HUB_NAMES)


def test_mnli_from_the_hub_reads_as_from_glue_files(hub, tmp_path):
    """The hub numbers MNLI's classes in another order than the task; a checkpoint trained on one
    source and deployed on the other must see the same classes."""
    hub.splits["mnli", "validation_matched"] = mnli_split(MNLI_ROWS)
    from_hub = data.load_split(get_task("mnli"), "dev", None)
    assert hub.calls == [("glue", "mnli", "validation_matched")]
    (tmp_path / "MNLI").mkdir()
    (tmp_path / "MNLI" / "dev_matched.tsv").write_text("index\tsentence1\tsentence2\tgold_label\n" + "".join(
        f"{i}\t{p}\t{h}\t{g}\n" for i, (p, h, g) in enumerate(MNLI_ROWS)))
    from_files = data.load_split(get_task("mnli"), "dev", tmp_path)
    assert from_hub.texts == from_files.texts == [(p, h) for p, h, _ in MNLI_ROWS]
    assert from_hub.labels == from_files.labels == [1, 0, 2, 1]


def test_the_training_split_and_the_limit(hub):
    hub.splits["mnli", "train"] = mnli_split(MNLI_ROWS)
    train = data.load_split(get_task("mnli"), "train", None, limit=2)
    assert hub.calls == [("glue", "mnli", "train")]
    assert train.texts == [("A man runs.", "A person moves."), ("It rains.", "It is dry.")]
    assert train.labels == [1, 0]
    assert len(data.load_split(get_task("mnli"), "train", None, limit=99).labels) == 4


def test_regression_scores_are_kept(hub):
    rows = [{"sentence1": "a", "sentence2": "b", "label": 4.25, "idx": 0},
            {"sentence1": "c", "sentence2": "d", "label": 0.5, "idx": 1}]
    hub.splits["stsb", "validation"] = HubSplit(rows, ["sentence1", "sentence2", "label", "idx"])
    dev = data.load_split(get_task("stsb"), "dev", None)
    assert dev.texts == [("a", "b"), ("c", "d")] and dev.labels == [4.25, 0.5]


def test_hub_labels_that_are_not_the_tasks(hub):
    hub.splits["sst2", "validation"] = HubSplit([{"sentence": "x", "label": 0, "idx": 0}],
                                                ["sentence", "label", "idx"], ["bad", "good"])
    with pytest.raises(ImcSimError) as info:
        data.load_split(get_task("sst2"), "dev", None)
    assert str(info.value) == ("glue/sst2 on the hub has labels ['bad', 'good'], not "
                               "['negative', 'positive']")


def test_hub_failures_are_one_line(hub, monkeypatch):
    with pytest.raises(ImcSimError) as info:  # no such split served: the stand-in raises KeyError
        data.load_split(get_task("rte"), "dev", None)
    assert str(info.value) == "could not load glue/rte from the hub: ('rte', 'validation')"
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ImcSimError) as info:
        data.load_split(get_task("rte"), "dev", None)
    assert str(info.value) == (
        "no data for rte: pass --data-dir DIR (GLUE layout, DIR/RTE/) or set $IMC_SIM_DATA, or your "
        "own --validation-file; or `pip install datasets` to download GLUE from the hub")
    with pytest.raises(ImcSimError, match="or your own --train-file/--validation-file; or `pip"):
        data.load_split(get_task("rte"), "train", None)  # training's options, where training reads
