"""The same work on the CPU and on a real second torch device (CUDA where this machine has one):
the numbers agree (issue 11). Fake CUDA (test_fake_cuda_deploy.py, test_training_devices.py) checks
that nothing mixes devices; these tests check that a chip, a training step and a checkpoint give
the CPU's numbers there.

They skip, saying so, where no GPU is present. ``IMC_SIM_SECOND_DEVICE=cpu`` runs them with the
CPU as the second device, which checks the tests themselves on any machine (the CPU then runs the
compiled passes on both sides, so only the GPU run compares two implementations).
"""

from __future__ import annotations

import os

import pytest
import torch
from conftest import make_tiny_bert
from test_training_devices import METHOD_OPTIONS, adapted, cli

from imc_sim.checkpoint import load_model
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.deploy.chip import Chip
from imc_sim.devices.profile import load_profile

SECOND = os.environ.get("IMC_SIM_SECOND_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
if SECOND is None:
    pytest.skip("no CUDA device on this machine (IMC_SIM_SECOND_DEVICE=cpu checks these tests on the CPU)",
                allow_module_level=True)
DEVICES = ("cpu", SECOND)
DETERMINISTIC = ("grasp", "grasp-w", "lora", "full")  # their step draws no random numbers


def ids_on(device: str) -> torch.Tensor:
    return (torch.arange(42).view(6, 7) * 7 % 97 + 1).to(device)


def chip_readout(profile: str, device: str, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The programmed-and-drifted (1 d) weights of every layer of chip ``seed`` and two forwards'
    logits (two reads: the per-read noise differs), computed on ``device``, returned on the CPU."""
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile(profile))
    model.to(device)
    chip = Chip(deployment, seed)
    chip.drift_to(86400.0)
    ids = ids_on(device)
    with torch.no_grad():
        logits = torch.stack([model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
                              for _ in range(2)])
    return {n: layer.weights.cpu() for n, layer in deployment.layers.items()}, logits.cpu()


@pytest.mark.parametrize("profile", ["pcm", "reram", "fefet"])
def test_a_chip_on_the_second_device_is_the_cpus_chip(profile):
    """The same seed programs the same devices there (one counter-based generator on every device)
    and its outputs agree in distribution: each chip's output error (from the digital logits)
    within 10 % between devices, over 4 chips."""
    model = make_tiny_bert()
    with torch.no_grad():
        ids = ids_on("cpu")
        digital = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    for seed in range(4):
        (w_cpu, l_cpu), (w_dev, l_dev) = (chip_readout(profile, d, seed) for d in DEVICES)
        for name, w in w_cpu.items():
            torch.testing.assert_close(w_dev[name], w, rtol=0, atol=1e-5, msg=f"chip {seed}, {name}")
        assert not torch.equal(l_cpu[0], l_cpu[1])  # two reads, two draws of the read noise
        err_cpu, err_dev = ((ell - digital).abs().mean() for ell in (l_cpu, l_dev))
        assert err_dev == pytest.approx(err_cpu, rel=0.1), f"chip {seed}: {err_dev} against {err_cpu}"


@pytest.mark.parametrize("name", list(METHOD_OPTIONS))
def test_a_training_step_on_the_second_device(name):
    """One step of every method there: parameters and gradients stay there, the loss is finite,
    and where the step draws no random numbers the loss is the CPU's."""
    losses = []
    for device in DEVICES:
        method, config, model = adapted("bert", name)
        model.to(device).train()
        ids = ids_on(device)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                    labels=torch.tensor([0, 1, 1, 0, 1, 0], device=device))
        extra = method.extra_loss(model, config)
        loss = out.loss if extra is None else out.loss + extra
        loss.backward()
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert trainable and all(p.grad is not None and p.grad.device.type == torch.device(device).type
                                 for p in trainable)
        assert torch.isfinite(loss)
        losses.append(loss.item())
    if name in DETERMINISTIC:
        assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_a_checkpoint_trained_there_evaluates_the_same_on_the_cpu(tmp_path, tiny_model_dir, tiny_glue):
    """Trained on the second device, saved, loaded on each: the merged model's logits agree."""
    assert cli(tmp_path, tiny_model_dir, tiny_glue, "--k", "4", "--torch-device", SECOND) == 0
    logits = []
    for device in DEVICES:
        model = load_model(tmp_path / "model.pt").model.to(device)
        ids = ids_on(device)
        with torch.no_grad():
            logits.append(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.cpu())
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-4, atol=1e-5)
