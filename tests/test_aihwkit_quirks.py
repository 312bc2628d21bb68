"""aihwkit 1.1.0 quirks: each shown to exist, and shown to be handled by imc-sim.

If a newer aihwkit fixes one, its "exists" assertion fails and the workaround can go.
"""

import pytest
import torch
from aihwkit.exceptions import ArgumentError, ConfigError
from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel
from aihwkit.nn.conversion import convert_to_analog
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from conftest import make_tiny_gpt2
from transformers.pytorch_utils import Conv1D

from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices.aihwkit_models import build_noise_model
from imc_sim.devices.profile import load_profile, profile_from_dict
from imc_sim.errors import ImcSimError

N = 200_000


def measured_sigma(model, g: float) -> float:
    torch.manual_seed(0)
    return model.apply_programming_noise_to_conductance(torch.full((N,), g)).std().item()


def poly(coeffs, x):
    return sum(c * x**i for i, c in enumerate(coeffs))


def test_pcm_g_max_reference_quirk_and_fix():
    with pytest.raises(AttributeError, match="prog_coeff_g_max_reference"):
        PCMLikeNoiseModel(prog_coeff=[1.0, 0.0, 0.0], g_max=50.0,
                          prog_coeff_g_max_reference=25.0).apply_programming_noise_to_conductance(
            torch.ones(4))
    coeffs = [0.26348, 1.9650, -1.1731]
    raw = {"name": "p", "description": "d", "source": "s", "model": "pcm",
           "conductance": {"g_max": 50.0}, "programming": {"coeffs": coeffs, "coeffs_g_ref": 25.0}}
    model = build_noise_model(profile_from_dict(raw))
    expected = poly(coeffs, 0.5) * 50.0 / 25.0  # the fit is in uS at 25 uS: doubles at 50 uS
    assert measured_sigma(model, 25.0) == pytest.approx(expected, rel=0.02)


def test_reram_reference_quirk_and_fix():
    quirky = ReRamWan2022NoiseModel(g_max=20.0)
    assert quirky.coeff_g_max_reference == 20.0  # the 40 uS of the fit is stored but never read
    model = build_noise_model(profile_from_dict(
        {"name": "r", "description": "d", "source": "s", "model": "reram-wan2022",
         "conductance": {"g_max": 20.0}}))
    coeffs = model.coeff_dic[1.0]
    expected = abs(poly(coeffs, 0.5)) * 20.0 / 40.0
    assert measured_sigma(model, 10.0) == pytest.approx(expected, rel=0.02)
    with pytest.raises(ArgumentError):
        quirky.apply_drift_noise_to_conductance(torch.ones(3), torch.ones(3), 3600.0)
    with pytest.raises(ImcSimError, match="only characterised"):
        load_profile("reram").check_times([3600.0])


def test_convert_to_analog_leaves_conv1d_digital_but_deploy_converts_it():
    converted = convert_to_analog(make_tiny_gpt2(), TorchInferenceRPUConfig())
    assert any(isinstance(m, Conv1D) for m in converted.modules())
    deployment = deploy_model(make_tiny_gpt2(), load_profile("pcm"))
    assert not any(isinstance(m, Conv1D) for m in deployment.model.modules())
    assert sum(isinstance(m, CrossbarLinear) for m in deployment.model.modules()) == 2 * 4


def test_torch_tiles_have_no_w_noise():
    config = TorchInferenceRPUConfig()
    config.forward.w_noise = 0.01
    with pytest.raises(ConfigError, match="w_noise"):
        TorchInferenceTile(4, 4, rpu_config=config)


def test_randomness_comes_from_torch_global_generator_only():
    def programmed(torch_seed: int, numpy_seed: int) -> torch.Tensor:
        import numpy as np

        np.random.seed(numpy_seed)
        torch.manual_seed(torch_seed)
        w, _ = PCMLikeNoiseModel(g_max=25.0).apply_programming_noise(torch.linspace(-1, 1, 64))
        return w

    assert torch.equal(programmed(1, 1), programmed(1, 2))
    assert not torch.equal(programmed(1, 1), programmed(2, 1))
