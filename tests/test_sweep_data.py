"""imc-sim sweep on the user's own data and on language models: the same numbers as deploy, GLUE's
layout and own CSV alike, unit keys that follow the data and its columns, shipping to a worker,
and bad input in one line with the store untouched."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from conftest import LM_TEXT, NEGATIVE, POSITIVE, write_plan_file
from test_sweep import checked_refusal, noisy_device, store_of, sweep  # noqa: F401 (a fixture)

from imc_sim.cli import main
from imc_sim.data import DataSource
from imc_sim.deploy.executors import InProcessExecutor, _run_shipped, run_sweep
from imc_sim.deploy.plan import load_plan
from imc_sim.deploy.results import CheckpointCurve
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.deploy.store import read_store, summarize_store
from imc_sim.deploy.unit import run_unit
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.units import parse_times

TIMES = ["1s", "1y"]


def write_csv(path: Path) -> Path:
    """The tiny SST-2 dev set (``conftest.tiny_glue``'s rows, its text cells as they are) as a CSV
    with other column names, a second text column and a second 0/1 column (``stars``, flipped)."""
    rows = [(s, 1) for s in POSITIVE] + [(s, 0) for s in NEGATIVE]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "title", "sentiment", "stars"])
        writer.writerows([f"{s} ", s.split()[-1], label, 1 - label] for s, label in rows)
    return path


@pytest.fixture
def own_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "dev.csv")


def write_plan(folder: Path, ckpts, **fields) -> Path:
    """A plan beside its data; its validation_file may be relative to the plan's folder."""
    return write_plan_file(folder, **{"checkpoints": [str(c) for c in ckpts], "seeds": 2, "times": TIMES,
                                      **fields})


def swept(plan_path: Path) -> CheckpointCurve:
    """Run the plan in this process into a fresh store; the curve of its one checkpoint and device."""
    plan = load_plan(plan_path)
    store = plan_path.with_suffix(".fresh.jsonl")
    run_sweep(plan, store, InProcessExecutor(progress=False))
    [result] = summarize_store(plan, read_store(store))
    return result.checkpoints[0]


def assert_same_numbers(a: CheckpointCurve, b: CheckpointCurve) -> None:
    assert a.digital_metric == b.digital_metric
    assert [(p.t_seconds, p.metrics) for p in a.points] == [(p.t_seconds, p.metrics) for p in b.points]


OWN_COLUMNS = {"validation_file": "dev.csv", "text_column": "review", "label_column": "sentiment"}


def test_own_csv_equals_deploy_and_glue_layout(tiny_checkpoint, tiny_glue, noisy_device, own_csv,  # noqa: F811
                                               tmp_path):
    own = swept(write_plan(tmp_path, [tiny_checkpoint], devices=[str(noisy_device)], **OWN_COLUMNS))
    source = DataSource(validation_file=str(own_csv), text_columns=("review",), label_column="sentiment")
    deployed = deploy_checkpoint(tiny_checkpoint, load_profile(str(noisy_device)), parse_times(TIMES), 2,
                                 source=source, progress=False)
    assert_same_numbers(own, deployed.curve)
    assert len(set(own.points[1].metrics)) > 1  # the two chips really differ
    glue = swept(write_plan(tmp_path, [tiny_checkpoint], devices=[str(noisy_device)],
                            data_dir=str(tiny_glue)))
    assert_same_numbers(own, glue)


def test_unit_keys_follow_the_file_and_its_columns(tiny_checkpoint, own_csv, tmp_path):
    def keys(**fields) -> list[str]:
        return [u.key for u in load_plan(write_plan(tmp_path, [tiny_checkpoint], **fields)).units()]

    base = keys(**OWN_COLUMNS)
    assert base == keys(**OWN_COLUMNS) and len(set(base)) == 2
    for change in ({"text_column": "title"}, {"label_column": "stars"}):
        assert not set(keys(**{**OWN_COLUMNS, **change})) & set(base), change
    two = r"--text-column: the checkpoint reads 1 text column\(s\) \(sentence\); got 2$"
    with pytest.raises(ImcSimError, match=two):
        keys(**{**OWN_COLUMNS, "text_column": ["review", "title"]})  # sentence pairs for a one-sentence model
    entry = load_plan(write_plan(tmp_path, [tiny_checkpoint], **OWN_COLUMNS)).units()[0].entry()
    assert entry["own_data"] == {"file_format": "csv", "header": None, "text_column": ["review"],
                                 "label_column": "sentiment"}
    own_csv.write_text(own_csv.read_text() + "one more review,more,1,0\n")
    assert not set(keys(**OWN_COLUMNS)) & set(base)


def test_a_worker_reads_the_shipped_file_as_the_plan_reads_its_own(tiny_checkpoint, own_csv, tmp_path):
    unit = load_plan(write_plan(tmp_path, [tiny_checkpoint], seeds=1, **OWN_COLUMNS)).units()[0]
    here = run_unit(unit, tiny_checkpoint, unit.data.source)
    own_csv.unlink()  # the worker has only the shipped bytes
    shipped = _run_shipped(unit, tiny_checkpoint.read_bytes(), write_csv(tmp_path / "x.csv").read_bytes())
    assert shipped.run == here.run and shipped.key == here.key


def test_checkpoint_trained_on_own_data_reads_with_training_columns(tiny_model_dir, tiny_glue, own_csv,
                                                                     noisy_device, tmp_path,  # noqa: F811
                                                                     capsys):
    ckpt = tmp_path / "mine.pt"
    assert main(["train", "--model", str(tiny_model_dir), "--train-file", str(own_csv), "--validation-file",
                 str(own_csv), "--text-column", "review", "--label-column", "sentiment", "--max-steps", "3",
                 "--batch-size", "4", "--k", "4", "--lr", "0.05", "--out", str(ckpt), "--quiet"]) == 0
    plan = write_plan(tmp_path, [ckpt], devices=[str(noisy_device)], validation_file="dev.csv")
    deployed = deploy_checkpoint(ckpt, load_profile(str(noisy_device)), parse_times(TIMES), 2,
                                 source=DataSource(validation_file=str(own_csv)), progress=False)
    assert_same_numbers(swept(plan), deployed.curve)
    write_plan(tmp_path, [ckpt], data_dir=str(tiny_glue))
    checked_refusal(["sweep", str(plan), "--quiet"], store_of(plan),
                    "a checkpoint trained on own data (labels 0, 1) needs validation_file", capsys)


def test_lm_plan_reports_perplexity_as_deploy_does(lm_checkpoint, lm_corpus, tmp_path, capsys):
    plan = write_plan(tmp_path, [lm_checkpoint], validation_file=str(lm_corpus / "heldout.txt"))
    assert sweep(plan, "--json", str(tmp_path / "s.json")) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["metric_name"] == "perplexity"
    [curve] = [CheckpointCurve.from_json(c) for c in summary["devices"][0]["checkpoints"]]
    assert all(math.isfinite(m) and m > 1 for p in curve.points for m in p.metrics)
    deployed = deploy_checkpoint(lm_checkpoint, load_profile("pcm"), parse_times(TIMES), 2,
                                 source=DataSource(validation_file=str(lm_corpus / "heldout.txt")),
                                 progress=False)
    assert_same_numbers(curve, deployed.curve)
    out = capsys.readouterr().out
    assert "lm on pcm (2 seeds)" in out and f"{curve.digital_metric:.2f}" in out  # a number, not x100 %
    unit = load_plan(plan).units()[0]  # seed 0, as a Ray worker runs it
    shipped = _run_shipped(unit, lm_checkpoint.read_bytes(), (lm_corpus / "heldout.txt").read_bytes())
    assert shipped.run.digital_metric == curve.digital_metric
    assert shipped.run.metrics == tuple(p.metrics[0] for p in curve.points)


@pytest.mark.parametrize("fields, message", [
    ({"validation_file": "gone.csv"}, "validation_file gone.csv not found"),
    ({**OWN_COLUMNS, "text_column": "body"}, "no column 'body'"),
    ({**OWN_COLUMNS, "label_column": "grade"}, "no column 'grade'"),
    ({**OWN_COLUMNS, "data_dir": "glue"}, "data_dir (GLUE's layout) and validation_file (own data) exclude"),
    ({"text_column": "review"}, "text_column is for own data: give validation_file"),
    ({**OWN_COLUMNS, "text_column": ["review", "title", "stars"]}, "text_column takes one column"),
    ({**OWN_COLUMNS, "header": "yes"}, "header must be true or false"),
    ({"validation_file": "heldout.txt"}, "plain text is for --task lm checkpoints"),
])
def test_bad_own_data_one_line_store_untouched(fields, message, tiny_checkpoint, own_csv, tmp_path, capsys):
    (tmp_path / "heldout.txt").write_text(LM_TEXT)
    plan = write_plan(tmp_path, [tiny_checkpoint], **fields)
    checked_refusal(["sweep", str(plan), "--quiet"], store_of(plan), f"plan {plan}: ", capsys)
    checked_refusal(["sweep", str(plan), "--quiet"], store_of(plan), message, capsys)
    assert not store_of(plan).exists()


@pytest.mark.parametrize("fields, message", [
    ({}, "language-model (--task lm) checkpoints need validation_file"),
    ({"data_dir": "glue"}, "language-model (--task lm) checkpoints need validation_file"),
    ({"validation_file": "dev.csv"}, "not a .csv data file"),
    ({"validation_file": "heldout.txt", "label_column": "label"}, "label_column is for classification"),
])
def test_bad_lm_plan_one_line_store_untouched(fields, message, lm_checkpoint, own_csv, tmp_path, capsys):
    (tmp_path / "heldout.txt").write_text(LM_TEXT)
    plan = write_plan(tmp_path, [lm_checkpoint], **fields)
    checked_refusal(["sweep", str(plan), "--quiet"], store_of(plan), message, capsys)
    assert not store_of(plan).exists()


def test_mixed_language_model_and_classifier_one_line(lm_checkpoint, lm_corpus, tiny_checkpoint, tmp_path,
                                                       capsys):
    plan = write_plan(tmp_path, [lm_checkpoint, tiny_checkpoint],
                      validation_file=str(lm_corpus / "heldout.txt"))
    checked_refusal(["sweep", str(plan), "--quiet"], store_of(plan), "trained on different tasks", capsys)
    assert not store_of(plan).exists()
