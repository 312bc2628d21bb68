"""The table `imc-sim deploy` prints, whole, for a higher-is-better metric and for perplexity; and
where a run's data comes from: a hub dataset's configuration, a deploy without a file to evaluate
on, and regression scores on a user's own file."""

from __future__ import annotations

import sys
import types

import pytest

from imc_sim.data import DataSource, load_dev, load_train
from imc_sim.deploy.results import CheckpointCurve, DeployResult, TimePoint
from imc_sim.deploy.run import format_deploy_table
from imc_sim.errors import ImcSimError
from imc_sim.tasks import get_task


def deploy_result(metric_name: str, digital: float, points: tuple[TimePoint, ...]) -> DeployResult:
    curve = CheckpointCurve("grasp (m.pt)", "m.pt", "grasp", None, digital, points)
    return DeployResult(curve, "sst2", metric_name, "pcm", None, False, 872, 2)


def test_the_deploy_table_for_accuracy():
    points = (TimePoint.of(1.0, [0.8, 0.85]), TimePoint.of(86400.0, [0.7, 0.75]))
    assert format_deploy_table(deploy_result("accuracy", 0.9, points)).splitlines() == [
        "drift  accuracy (mean +- std, 2 seeds)  min    digital",
        "-----  -------------------------------  -----  -------",
        "1s     82.50 +- 3.54                    80.00  90.00",
        "1d     72.50 +- 3.54                    70.00  90.00"]


def test_the_deploy_table_for_perplexity_shows_the_worst_as_max():
    points = (TimePoint.of(3600.0, [30.0, 40.0]),)
    assert format_deploy_table(deploy_result("perplexity", 20.5, points)).splitlines() == [
        "drift  perplexity (mean +- std, 2 seeds)  max    digital",
        "-----  ---------------------------------  -----  -------",
        "1h     35.00 +- 7.07                      40.00  20.50"]


class Split(list):
    column_names = ["text", "label"]
    features = {"text": object(), "label": types.SimpleNamespace(names=["neg", "pos"])}


def test_a_hub_dataset_is_loaded_with_its_configuration(monkeypatch):
    asked = []

    def load_dataset(name, config):
        asked.append((name, config))
        return {"train": Split([{"text": "fine", "label": 1}, {"text": "poor", "label": 0}])}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    task, _ = load_train(DataSource(dataset="someone/reviews", dataset_config="short"), "sst2")
    assert asked == [("someone/reviews", "short")] and task.labels == ("neg", "pos")


def test_deploy_on_own_data_needs_a_file_to_evaluate_on(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("label,text\npos,a\nneg,b\n")
    task, _ = load_train(DataSource(train_file=str(train), validation_file=str(train)), "sst2")
    with pytest.raises(ImcSimError) as info:
        load_dev(DataSource(train_file=str(train)), task)
    assert str(info.value) == "pass --validation-file (the file to evaluate on)"


def test_regression_scores_on_an_own_file_may_be_whole_or_not(tmp_path):
    """STS-B scores are numbers, whole or not: no 'integers and names' mix."""
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence1\tsentence2\tscore\na\tb\t3\nc\td\t4.2\n")
    assert load_dev(DataSource(validation_file=str(dev)), get_task("stsb")).labels == [3.0, 4.2]
