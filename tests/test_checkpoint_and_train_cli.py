"""imc-sim train end to end on a tiny local model, checkpoint round trip, and bad input."""

import json
import os
import pickle
import re
import shutil

import pytest
import torch
from conftest import forged, make_tiny_bert

from imc_sim.checkpoint import (
    load_adapted,
    load_model,
    load_state,
    read_checkpoint,
    trainable_state,
)
from imc_sim.cli import main
from imc_sim.errors import ImcSimError


def train_cli(tmp_path, model_dir, glue, *extra, out="model.pt"):
    argv = ["train", "--model", str(model_dir), "--data-dir", str(glue), "--max-steps", "3",
            "--batch-size", "8", "--out", str(tmp_path / out), "--json",
            str(tmp_path / "metrics.json"), "--quiet", *extra]
    return main(argv)


def batch_of(loaded):
    enc = loaded.tokenizer(["a delight", "a dull mess"], return_tensors="pt", padding=True)
    return dict(enc)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, tiny_glue):
    tmp = tmp_path_factory.mktemp("trained")
    assert train_cli(tmp, tiny_model_dir, tiny_glue, "--method", "stochgrasp", "--k", "4",
                     "--lr", "0.05") == 0
    return tmp


def test_train_writes_checkpoint_and_metrics(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("method", "task", "metric_name", "metric", "trainable_params", "head_params",
                "base_params", "seconds_per_step"):
        assert key in metrics
    assert metrics["method"] == "stochgrasp" and metrics["metric_name"] == "accuracy"
    assert metrics["head_params"] == 32 * 2 + 2
    data = read_checkpoint(trained / "model.pt")
    assert data["method"] == "stochgrasp" and data["config"]["k"] == 4
    assert data["config"]["sampling"] == "outputs"  # the default
    assert data["base_model"]["kind"] == "local" and data["labels"] == ["negative", "positive"]
    assert sum(t.numel() for t in data["state"].values()) == (
        metrics["trainable_params"] + metrics["head_params"])
    # size follows the trainable parameters, not the base model (~1M parameters here)
    assert os.path.getsize(trained / "model.pt") < 8 * sum(
        t.numel() for t in data["state"].values()) + 100_000


def test_round_trip_adapted_and_merged_logits(trained):
    adapted = load_adapted(trained / "model.pt")
    assert any(n.endswith(".mu") for n, _ in adapted.model.named_parameters())
    merged = load_model(trained / "model.pt")
    with torch.no_grad():
        a = adapted.model(**batch_of(adapted)).logits
        b = merged.model(**batch_of(merged)).logits
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    state = read_checkpoint(trained / "model.pt")["state"]
    name = next(n for n in state if n.endswith(".mu"))
    assert torch.equal(dict(adapted.model.named_parameters())[name].detach(), state[name])
    assert state[name].abs().sum() > 0  # training moved mu


@pytest.mark.parametrize("method", ["grasp", "lora"])
def test_gpt2_conv1d_train_and_merge_round_trip(method, tmp_path, tiny_gpt2_dir, tiny_glue):
    k = ["--k", "4"] if method == "grasp" else []
    assert train_cli(tmp_path, tiny_gpt2_dir, tiny_glue, "--method", method, *k, "--lr", "0.05") == 0
    adapted = load_adapted(tmp_path / "model.pt")
    merged = load_model(tmp_path / "model.pt")
    assert merged.meta["base_fingerprint"]["model_type"] == "gpt2"
    with torch.no_grad():
        a = adapted.model(**batch_of(adapted)).logits
        b = merged.model(**batch_of(merged)).logits
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickled_object_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    torch.save({"format": "imc-sim-checkpoint", "payload": Exploit()}, bad)
    with pytest.raises(ImcSimError, match="not a readable imc-sim checkpoint"):
        read_checkpoint(bad)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    with open(tmp_path / "raw.pkl", "wb") as fh:
        pickle.dump(Exploit(), fh)
    with pytest.raises(ImcSimError):
        read_checkpoint(tmp_path / "raw.pkl")
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_truncated_and_foreign_files_are_refused(trained, tmp_path):
    """An unreadable file's line gives the first line of torch's reason, or the exception's name
    where it has none (an empty file's EOFError); a missing file is named as missing."""
    blob = (trained / "model.pt").read_bytes()
    cut, empty = tmp_path / "cut.pt", tmp_path / "empty.pt"
    cut.write_bytes(blob[: len(blob) // 2])
    empty.write_bytes(b"")
    with pytest.raises(Exception) as raw:
        torch.load(cut, map_location="cpu", weights_only=True)
    reason = str(raw.value).strip().splitlines()[0][:160]
    assert reason and reason != type(raw.value).__name__
    for path, why in ((cut, reason), (empty, "EOFError")):
        with pytest.raises(ImcSimError) as refused:
            read_checkpoint(path)
        assert str(refused.value) == f"{path} is not a readable imc-sim checkpoint ({why})"
    with pytest.raises(ImcSimError, match=rf"^no checkpoint file {re.escape(str(tmp_path))}/absent\.pt$"):
        read_checkpoint(tmp_path / "absent.pt")


def test_a_long_reason_is_cut_to_its_first_160_characters(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"x")
    first = "".join(str(i % 10) for i in range(200))

    def refuse(*args, **kwargs):
        raise RuntimeError(f"  {first}\nsecond line")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(ImcSimError) as refused:
        read_checkpoint(path)
    assert str(refused.value) == f"{path} is not a readable imc-sim checkpoint ({first[:160]})"


def test_another_version_or_missing_entries_are_refused_by_name(trained, tmp_path):
    data = read_checkpoint(trained / "model.pt")
    newer = tmp_path / "newer.pt"
    torch.save({**data, "version": 2}, newer)
    with pytest.raises(ImcSimError, match=rf"^{re.escape(str(newer))}: checkpoint version 2 is not 1$"):
        read_checkpoint(newer)
    partial = tmp_path / "partial.pt"
    torch.save({k: v for k, v in data.items() if k not in ("task", "state")}, partial)
    with pytest.raises(ImcSimError, match=rf"^{re.escape(str(partial))}: checkpoint lacks task, state$"):
        read_checkpoint(partial)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ImcSimError, match="not an imc-sim checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")


@pytest.mark.parametrize(("changes", "entry"), [
    (lambda d: {"base_model": "minilm"}, "base_model is str, not dict"),
    (lambda d: {"base_model": {**d["base_model"], "name": None}}, "base_model.name is NoneType, not str"),
    (lambda d: {"base_fingerprint": {**d["base_fingerprint"], "hidden_size": "32"}},
     "base_fingerprint.hidden_size is str, not int"),
    (lambda d: {"base_fingerprint": {**d["base_fingerprint"], "weight_sum": True}},
     "base_fingerprint.weight_sum is bool, not float"),
    (lambda d: {"task": 3}, "task is int, not str"),
    (lambda d: {"config": [4]}, "config is list, not dict"),
    (lambda d: {"train_args": "glue"}, "train_args is str, not dict"),
    (lambda d: {"state": {**d["state"], "classifier.bias": [0.0, 0.0]}},
     "state['classifier.bias'] is list, not Tensor"),
])
def test_an_entry_of_the_wrong_type_is_refused_in_one_line(changes, entry, trained, tmp_path, capsys):
    """A file edited by hand: each of these was a KeyError, TypeError or AttributeError traceback."""
    data = read_checkpoint(trained / "model.pt")
    bad = forged(trained / "model.pt", tmp_path / "bad.pt", **changes(data))
    assert main(["deploy", str(bad), "--device", "ideal", "--drift", "1s", "--seeds", "1", "--quiet"]) == 2
    assert capsys.readouterr().err == f"imc-sim: error: {bad}: checkpoint entry {entry}\n"


def test_base_model_mismatch_is_refused(trained, tmp_path, tiny_model_dir):
    other = tmp_path / "other"
    model = make_tiny_bert(vocab_size=30522)
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight.add_(0.01)
    model.save_pretrained(other)
    path = trained / "model.pt"
    with pytest.raises(ImcSimError, match=rf"^{re.escape(str(path))}: base model does not match"):
        load_model(path, model_override=str(other))


def test_the_base_model_can_come_from_another_folder(trained, tmp_path, tiny_model_dir):
    """A copy of the base model elsewhere (a moved folder) gives the same model."""
    moved = shutil.copytree(tiny_model_dir, tmp_path / "moved")
    here, there = load_model(trained / "model.pt"), load_model(trained / "model.pt", str(moved))
    with torch.no_grad():
        torch.testing.assert_close(there.model(**batch_of(there)).logits,
                                   here.model(**batch_of(here)).logits)


def test_a_checkpoint_whose_adapter_does_not_fit_names_itself(trained, tmp_path):
    state = read_checkpoint(trained / "model.pt")["state"]
    mu = next(n for n in state if n.endswith(".mu"))
    short = {n: t for n, t in state.items() if n != mu}
    path = forged(trained / "model.pt", tmp_path / "short.pt", state=short)
    with pytest.raises(ImcSimError, match=rf"^{re.escape(str(path))}: adapter does not fit the model"):
        load_adapted(path)


def test_a_loaded_checkpoints_meta_leaves_the_weights_in_the_model(trained):
    """The record beside the model holds no second reference to every trained tensor (for
    ``full``, the whole model)."""
    loaded = load_adapted(trained / "model.pt")
    assert "state" not in loaded.meta and loaded.meta["method"] == "stochgrasp"


def two_layers() -> torch.nn.Module:
    """Trainable 0.weight (3, 2), 0.bias, 1.weight (1, 3), 1.bias."""
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))


def test_the_state_a_checkpoint_saves_is_a_copy_of_the_trainable_parameters():
    model = two_layers()
    model[1].bias.requires_grad_(False)
    state = trainable_state(model)
    assert sorted(state) == ["0.bias", "0.weight", "1.weight"]
    before = state["0.weight"].clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert torch.equal(state["0.weight"], before)


def test_a_state_that_does_not_fit_says_how_and_changes_nothing():
    """Up to two names of each kind, sorted; a wrong shape anywhere leaves every parameter as
    it was."""
    model = two_layers()
    state = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    odd = {"1.weight": state["1.weight"], "c": state["0.bias"], "a": state["0.bias"], "b": state["0.bias"]}
    with pytest.raises(ImcSimError) as refused:
        load_state(model, odd, "ckpt.pt")
    assert str(refused.value) == ("ckpt.pt: adapter does not fit the model (unexpected ['a', 'b'], "
                                  "missing ['0.bias', '0.weight'])")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ImcSimError) as refused:
        load_state(model, {**state, "1.bias": torch.zeros(1, 1)}, "ckpt.pt")
    assert str(refused.value) == "ckpt.pt: 1.bias has shape (1, 1), model wants (1,)"
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name
    load_state(model, state, "ckpt.pt")
    assert all(not p.any() for p in model.parameters())


@pytest.mark.parametrize(("extra", "message"), [
    (["--method", "nope"], "unknown method 'nope'"),
    (["--targets", "query,nothing_here"], "matches no Linear/Conv1D"),
    (["--k", "100000"], "K must be in"),  # zero and negative numbers: tests/test_cli_numbers.py
    (["--method", "lora", "--k", "64"], "--k does not apply to --method lora"),
    (["--method", "grasp", "--lora-r", "4"], "--lora-r does not apply to --method grasp"),
    (["--method", "grasp", "--rows", "shared"], "--rows does not apply to --method grasp"),
    (["--method", "grasp", "--sampling", "outputs"], "--sampling does not apply to --method grasp"),
    (["--method", "grasp-w", "--lam", "0.1"], "--lam does not apply to --method grasp-w"),
    (["--method", "grasp-w", "--sigma-target", "0.02"],
     "--sigma-target does not apply to --method grasp-w"),
    (["--method", "stochgrasp", "--no-scale"], "--no-scale does not apply to --method stochgrasp"),
    (["--method", "lora", "--no-shift"], "--no-shift does not apply to --method lora"),
    (["--method", "ia3", "--targets", "ff2"], "--targets does not apply to --method ia3"),
    (["--method", "bitfit", "--k", "8"], "--k does not apply to --method bitfit (it takes no"),
    (["--method", "full", "--lora-r", "8"], "--lora-r does not apply to --method full"),
])
def test_bad_input_one_line_no_file(extra, message, tmp_path, tiny_model_dir, tiny_glue, capsys):
    assert train_cli(tmp_path, tiny_model_dir, tiny_glue, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_missing_data_and_unknown_task(tmp_path, tiny_model_dir, capsys):
    assert train_cli(tmp_path, tiny_model_dir, tmp_path / "nowhere") == 2
    assert "no data file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_cli(tmp_path, tiny_model_dir, tmp_path, "--task", "imagenet")
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("*.pt"))


def test_existing_checkpoint_survives_a_failed_run(tmp_path, tiny_model_dir, tiny_glue):
    (tmp_path / "model.pt").write_bytes(b"previous")
    assert train_cli(tmp_path, tiny_model_dir, tiny_glue, "--k", "100000") == 2
    assert (tmp_path / "model.pt").read_bytes() == b"previous"


def test_the_checkpoint_records_its_data_by_absolute_path(tmp_path, tiny_model_dir, tiny_glue, monkeypatch):
    """Static input ranges read the recorded training file back at deploy: run from another folder
    holding a `glue/` of its own, that must still be the training run's file, not the other one."""
    from imc_sim.calibration import recorded_training_source
    from imc_sim.data import DataSource
    from imc_sim.tasks import get_task

    shutil.copytree(tiny_glue, tmp_path / "run" / "glue")
    monkeypatch.chdir(tmp_path / "run")
    assert main(["train", "--model", str(tiny_model_dir), "--data-dir", "glue", "--max-steps", "1",
                 "--batch-size", "8", "--out", "model.pt", "--quiet"]) == 0
    shutil.copytree(tiny_glue, tmp_path / "elsewhere" / "glue")
    monkeypatch.chdir(tmp_path / "elsewhere")
    args = read_checkpoint(tmp_path / "run" / "model.pt")["train_args"]
    assert args["data_dir"] == args["data_source"]["data_dir"] == str(tmp_path / "run" / "glue")
    source, name = recorded_training_source({"train_args": args}, get_task("sst2"))
    assert name == str(tmp_path / "run" / "glue" / "SST-2" / "train.tsv")
    own = DataSource(train_file="t.csv", validation_file="~/d.csv", text_columns=("text",)).absolute()
    assert (own.train_file, own.validation_file, own.data_dir, own.text_columns) == (
        str(tmp_path / "elsewhere" / "t.csv"), os.path.expanduser("~/d.csv"), None, ("text",))
