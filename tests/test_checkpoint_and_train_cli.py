"""imc-sim train end to end on a tiny local model, checkpoint round trip, and bad input."""

import json
import os
import pickle

import pytest
import torch
from conftest import make_tiny_bert

from imc_sim.checkpoint import load_adapted, load_model, read_checkpoint
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
    blob = (trained / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ImcSimError, match="not a readable"):
        read_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ImcSimError, match="not an imc-sim checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")


def test_base_model_mismatch_is_refused(trained, tmp_path, tiny_model_dir):
    other = tmp_path / "other"
    model = make_tiny_bert(vocab_size=30522)
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight.add_(0.01)
    model.save_pretrained(other)
    with pytest.raises(ImcSimError, match="base model does not match"):
        load_model(trained / "model.pt", model_override=str(other))


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
