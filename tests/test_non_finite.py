"""NaN never passes for a result: a profile whose values overflow the simulation, a checkpoint
holding NaN, or training that diverges is one line and a non-zero exit, and no JSON file holds a
bare NaN token. Before, these deployed with exit 0 and reported 50% accuracy or a nan perplexity
(the audit of session 27)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import forged

from imc_sim.atomic import write_json_atomic
from imc_sim.checkpoint import read_checkpoint
from imc_sim.cli import main
from imc_sim.devices.profile import shipped_profiles
from imc_sim.errors import ImcSimError, NonFiniteOutputs
from imc_sim.evaluate import logits_and_labels
from imc_sim.lm import perplexity
from imc_sim.training.loop import check_finite


def tiny_conductance_profile(folder) -> str:
    """pcm.yaml with g_max = 1e-300 uS: valid by every range, yet programming divides by it."""
    text = shipped_profiles()["pcm"].read_text(encoding="utf-8")
    assert "  g_max: 25.0" in text
    path = folder / "vanishing.yaml"
    text = text.replace("name: pcm", "name: vanishing").replace("  g_max: 25.0", "  g_max: 1.0e-300")
    path.write_text(text)
    return str(path)


def stderr_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_deploy_on_a_profile_that_overflows_is_one_line_and_writes_nothing(tiny_checkpoint, tiny_glue,
                                                                            tmp_path, capsys):
    out = tmp_path / "r.json"
    profile = tiny_conductance_profile(tmp_path)
    rc = main(["deploy", str(tiny_checkpoint), "--device", profile, "--drift", "1d", "--seeds", "1",
               "--data-dir", str(tiny_glue), "--json", str(out), "--quiet"])
    assert rc == 2
    assert stderr_line(capsys).startswith(
        "imc-sim: error: on device 'vanishing' (chip 0, 1d), the model's outputs are NaN or infinite for ")
    assert not out.exists()


def test_a_language_model_on_that_profile_is_refused_too(lm_checkpoint, lm_corpus, tmp_path, capsys):
    rc = main(["deploy", str(lm_checkpoint), "--device", tiny_conductance_profile(tmp_path), "--drift", "1h",
               "--seeds", "1", "--validation-file", str(lm_corpus / "heldout.txt"), "--quiet"])
    assert rc == 2
    message = "(chip 0, 1h), the model's outputs are NaN or infinite: mean held-out loss nan"
    assert message in stderr_line(capsys)


def test_device_aware_training_on_it_writes_no_checkpoint(tmp_path, tiny_model_dir, tiny_glue, capsys):
    profile = tiny_conductance_profile(tmp_path)
    out = tmp_path / "model.pt"
    rc = main(["train", "--model", str(tiny_model_dir), "--data-dir", str(tiny_glue), "--max-steps", "2",
               "--batch-size", "8", "--k", "4", "--device", profile, "--out", str(out), "--quiet"])
    assert rc == 2
    assert stderr_line(capsys).endswith(f"lower --lr, or check the values of device profile {profile}")
    assert not out.exists()


def test_a_checkpoint_holding_nan_is_refused_on_reading(tiny_checkpoint, tmp_path):
    state = read_checkpoint(tiny_checkpoint)["state"]
    name = sorted(state)[0]
    bad = forged(tiny_checkpoint, tmp_path / "nan.pt",
                 state={**state, name: state[name].clone().fill_(math.inf)})
    with pytest.raises(ImcSimError) as info:
        read_checkpoint(bad)
    assert str(info.value) == f"{bad}: checkpoint entry state[{name!r}] holds NaN or infinite values"


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits are given: one row per example."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, **inputs):
        return SimpleNamespace(logits=self.logits)


def test_logits_count_the_examples_that_are_not_finite():
    labels = {"input_ids": torch.zeros(3, 1, dtype=torch.long), "labels": torch.tensor([0, 1, 1])}
    finite = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1e30, 0.0]])
    logits, gold = logits_and_labels(FixedLogits(finite), [labels])
    assert logits.tolist() == finite.tolist() and gold.tolist() == [0, 1, 1]
    broken = torch.tensor([[0.0, math.nan], [2.0, -1.0], [math.inf, -math.inf]])
    with pytest.raises(NonFiniteOutputs) as info:
        logits_and_labels(FixedLogits(broken), [labels, labels])
    assert str(info.value) == "the model's outputs are NaN or infinite for 4 of 6 examples"


def test_a_perplexity_too_large_for_a_float_is_refused(tiny_gpt2_lm_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_lm_dir)
    ids = torch.tensor([[1, 2, 3, 4]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    assert math.isfinite(perplexity(model, [batch]))
    with torch.no_grad():
        model.lm_head.weight.mul_(1e6)  # logits of ~1e6: a mean loss far above log(float max) = 709.8
    with pytest.raises(NonFiniteOutputs, match=r"^the model's outputs are NaN or infinite: mean held-out "):
        perplexity(model, [batch])


@pytest.mark.parametrize("device, hint", [(None, "lower --lr"), ("pcm", "lower --lr, or check the values of "
                                                                        "device profile pcm")])
def test_diverged_training_names_what_to_change(device, hint, tiny_bert):
    check_finite(tiny_bert, 3, 0.5, device)  # all finite: nothing to say
    with torch.no_grad():
        tiny_bert.classifier.weight[0, :2] = math.nan
    with pytest.raises(ImcSimError) as info:
        check_finite(tiny_bert, 3, 0.5, device)
    assert str(info.value) == f"training diverged: 2 trainable parameters are not finite after 3 steps at " \
                              f"learning rate 0.5; {hint}"


def test_json_results_are_strict_and_a_nan_keeps_the_old_file(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"mean": 0.5, "metrics": [0.25]})
    assert json.loads(path.read_text()) == {"mean": 0.5, "metrics": [0.25]}
    with pytest.raises(ImcSimError) as info:
        write_json_atomic(path, {"mean": math.nan})
    assert str(info.value) == f"{path} not written: the results hold NaN or infinite numbers"
    assert json.loads(path.read_text()) == {"mean": 0.5, "metrics": [0.25]}

