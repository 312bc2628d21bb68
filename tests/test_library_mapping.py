"""deploy_model used as a library (the black-box audit): models that are not Hugging Face
transformers (a plain MLP, torch's own Transformer encoder), names given as a string, a model on
the meta device, calibration batches of any shape, and a short repr."""

import pytest
import torch
from conftest import make_tiny_bert
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.deploy.chip import Chip
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError

FFN = "bert.encoder.layer.0.output.dense"


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3)).eval()


class Wrapped(nn.Module):
    """A model holding torch's Transformer encoder (its blocks at ``encoder.layers.N``)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2)

    def forward(self, x, padding=None):
        return self.encoder(x, src_key_padding_mask=padding)


INPUT = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))
PADDING = torch.tensor([[False] * 5, [False] * 4 + [True]])  # the fused path's nested tensors


def test_an_mlp_is_refused_by_default_with_the_way_in():
    with pytest.raises(ImcSimError) as info:
        deploy_model(nn.Sequential(*(nn.Linear(4, 4) for _ in range(4))), load_profile("pcm"))
    assert str(info.value) == ("no Linear/Conv1D layer of model type 'Sequential' lies in a numbered "
                               "transformer block (4 lie elsewhere): nothing to map to tiles; name the "
                               "layers to map, e.g. layers=['0', '1', '2'], or pass analog_head=True for "
                               "every Linear layer")
    with pytest.raises(ImcSimError) as info:
        deploy_model(nn.Sequential(nn.ReLU()), load_profile("pcm"))
    assert str(info.value) == ("model type 'Sequential' has no Linear/Conv1D layer that could compute on "
                               "tiles: nothing to map to tiles")


def test_layers_puts_exactly_the_named_layers_on_tiles():
    model = mlp()
    x = torch.randn(4, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        digital = model(x)
    deployment = deploy_model(model, load_profile("pcm"), layers=["0"])
    assert list(deployment.layers) == ["0"] and isinstance(model[0], CrossbarLinear)
    assert type(model[2]) is nn.Linear
    assert deployment.digital_params == 64 + 64 * 3 + 3  # the first layer's bias and the second layer
    Chip(deployment, 0).drift_to(3600.0)
    with torch.no_grad():
        assert not torch.allclose(model(x), digital)


def test_digital_takes_layers_out_of_the_named_ones():
    deployment = deploy_model(mlp(), load_profile("pcm"), digital=["2"], layers=["0", "2"])
    assert list(deployment.layers) == ["0"] and deployment.kept_digital == {"2": 64 * 3}


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": ["1", "0", "nope"]}, r"^layers names no Linear/Conv1D module of the model: 1, nope \(its "
                                      r"Linear/Conv1D modules are e\.g\. 0, 2\)$"),
    ({"layers": ["0"], "analog_head": True}, r"^layers and analog_head=True exclude each other: name every "
                                             r"layer to map in layers$"),
    ({"layers": "0"}, r"^layers: give a list of layer names, not a string \('0'\)$"),
    ({"layers": []}, r"^nothing to map to tiles: layers names no layer$"),
    ({"layers": ["0", "2"], "digital": ["0", "2"]}, r"^nothing to map to tiles: every layer"),
])
def test_layers_that_cannot_be_mapped_are_refused(kwargs, message):
    model = mlp()
    with pytest.raises(ImcSimError, match=message):
        deploy_model(model, load_profile("pcm"), **kwargs)
    assert all(type(m) is not CrossbarLinear for m in model.modules())  # the model is untouched


def test_a_top_level_torch_encoder_has_numbered_blocks():
    encoder = Wrapped().encoder
    deployment = deploy_model(encoder, load_profile("pcm"))
    assert list(deployment.layers) == [f"layers.{i}.linear{j}" for i in range(2) for j in (1, 2)]


@pytest.mark.parametrize("grad", [False, True])
def test_a_torch_encoder_computes_on_tiles_beside_its_digital_attention(grad):
    """MultiheadAttention reads its output projection's weight: that stays digital; the feed-forward
    layers compute on tiles, also where torch would take its fused path (no grad, padding)."""
    outputs = {}
    for device in ("ideal", "pcm"):
        model = Wrapped().eval()
        with torch.no_grad():
            digital = model(INPUT), model(INPUT, PADDING)
        deployment = deploy_model(model, load_profile(device))
        assert list(deployment.layers) == [f"encoder.layers.{i}.linear{j}" for i in range(2) for j in (1, 2)]
        assert type(model.encoder.layers[0].self_attn.out_proj) is not CrossbarLinear
        Chip(deployment, 0).drift_to(3600.0)
        with torch.set_grad_enabled(grad):
            outputs[device] = model(INPUT), model(INPUT, PADDING)
        deployment.use_analog([])
        with torch.no_grad():
            assert torch.equal(model(INPUT), digital[0])  # the digital model again
        outputs[device] = (*outputs[device], *digital)
    plain, padded, digital_plain, digital_padded = outputs["ideal"]
    torch.testing.assert_close(plain, digital_plain)  # the digital reference took torch's fused path
    kept = ~PADDING  # the fused path leaves padded positions zero
    torch.testing.assert_close(padded[kept], digital_padded[kept])
    plain, padded, digital_plain, digital_padded = outputs["pcm"]
    assert not torch.allclose(plain, digital_plain, atol=1e-3)
    assert not torch.allclose(padded[kept], digital_padded[kept], atol=1e-3)


def test_the_attention_projection_cannot_be_named():
    with pytest.raises(ImcSimError, match=r"^encoder\.layers\.0\.self_attn\.out_proj, encoder\.layers\.1\."
                                          r"self_attn\.out_proj: nn\.MultiheadAttention reads its "
                                          r"projection's weight directly"):
        deploy_model(Wrapped(), load_profile("pcm"),
                     layers=["encoder.layers.0.linear1", "encoder.layers.1.self_attn.out_proj",
                             "encoder.layers.0.self_attn.out_proj"])


def test_names_given_as_one_string_are_refused():
    with pytest.raises(ImcSimError, match=r"^digital: give a list of layer names, not a string"):
        deploy_model(make_tiny_bert(), load_profile("pcm"), digital=FFN)
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    with pytest.raises(ImcSimError, match=r"^use_analog: give a list of layer names, not a string"):
        deployment.use_analog(FFN)
    with pytest.raises(ImcSimError, match=r"^not analog layers of this deployment: nope, other$"):
        deployment.use_analog([FFN, "other", "nope"])


def test_every_layer_digital_leaves_nothing_to_map():
    model = make_tiny_bert()
    everything = [n for n, m in model.named_modules() if type(m) is nn.Linear and ".layer." in n]
    with pytest.raises(ImcSimError, match=r"^nothing to map to tiles: every layer that could go onto tiles "
                                          r"is in digital$"):
        deploy_model(model, load_profile("pcm"), digital=everything)


def test_a_model_on_the_meta_device_is_refused_before_any_change():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ImcSimError, match=r"^the model's weights are on the meta device "
                                          r"\(not materialised\): load its weights before deploying$"):
        deploy_model(model, load_profile("pcm"), analog_head=True)
    assert type(model[0]) is nn.Linear


def calibrated(batches, **kwargs):
    """The static input ranges of the MLP on pcm-chip calibrated over ``batches``."""
    deployment = deploy_model(mlp(), load_profile("pcm-chip"), **kwargs)
    deployment.calibrate(batches, "test batches")
    assert deployment.input_ranges == "test batches"
    return [layer.input_ranges for layer in deployment.layers.values()]


def test_calibration_batches_may_be_tensors_tuples_or_a_data_loader():
    x = torch.randn(8, 20, generator=torch.Generator().manual_seed(3))
    halves = [x[:4], x[4:]]
    expected = calibrated(halves, layers=["0", "2"])
    assert len(expected) == 2 and all(r is not None for r in expected)
    for batches in ([(h,) for h in halves], DataLoader(TensorDataset(x), batch_size=4), (h for h in halves)):
        ranges = calibrated(batches, analog_head=True)
        assert all(torch.equal(a, b) for a, b in zip(ranges, expected, strict=True))


def test_calibration_needs_a_list_of_batches():
    deployment = deploy_model(mlp(), load_profile("pcm-chip"), analog_head=True)
    with pytest.raises(ImcSimError, match=r"^calibrate takes batches, not one tensor: give a list of "
                                          r"batches, e\.g\. \[x\]$"):
        deployment.calibrate(torch.randn(4, 20))
    with pytest.raises(ImcSimError, match=r"^a batch is a mapping of keyword arguments, .* not int$"):
        deployment.calibrate([3])
    with pytest.raises(ImcSimError, match=r"^periphery\.input_range = static needs calibration data"):
        deployment.calibrate(x for x in [])
    for layer in deployment.layers.values():  # none left calibrating (it would compute), none has ranges
        with pytest.raises(ImcSimError):
            layer(torch.randn(1, layer.in_features))


def test_a_deployment_prints_in_one_short_line():
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    assert repr(deployment) == f"Deployment({deployment.describe()})"
    assert len(repr(deployment)) < 200 and "\n" not in repr(deployment)


def test_a_layer_registered_under_two_names_is_refused():
    """``named_modules`` lists a shared module once, so a tile would replace it under the first name
    and its second use would stay digital without a word."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = nn.Linear(16, 16)
            self.a, self.b = nn.ModuleList([layer]), nn.ModuleList([layer])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b[0](self.a[0](x))

    model = Shared()
    with pytest.raises(ImcSimError, match=r"^b\.0 is the module a\.0 registered a second time; a tile would "
                                          r"replace it under one name only: register each layer once$"):
        deploy_model(model, load_profile("pcm"), analog_head=True)
    assert isinstance(model.a[0], nn.Linear) and model.a[0] is model.b[0]  # nothing replaced


def test_a_weight_tied_to_a_digital_embedding_counts_as_digital():
    """GPT-2's head shares its weight with the token embedding: on tiles, the head's copy is on
    the chip and the embedding stays digital, so the digital parameters are the embeddings, the
    LayerNorms and every bias (they used to lose the embedding, subtracted with the head)."""
    from conftest import make_tiny_gpt2_lm
    from transformers.pytorch_utils import Conv1D

    model = make_tiny_gpt2_lm(vocab_size=500)
    assert model.lm_head.weight is model.transformer.wte.weight
    embeddings = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    norms = sum(p.numel() for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters())
    biases = sum(m.bias.numel() for m in model.modules()
                 if isinstance(m, Conv1D | nn.Linear) and m.bias is not None)
    deployment = deploy_model(model, load_profile("pcm"), analog_head=True)
    assert "lm_head" in deployment.layers
    assert deployment.digital_params == embeddings + norms + biases


def test_a_deployed_model_is_not_deployed_again_until_it_is_digital():
    """A second deploy_model used to say no layer lies in a transformer block (they were tiles)."""
    model = make_tiny_bert()
    deployment = deploy_model(model, "pcm")  # a profile's name
    assert deployment.profile == load_profile("pcm")
    with pytest.raises(ImcSimError, match=r"^the model is deployed already \(some of its layers are tiles\): "
                                          r"deployment.use_analog\(\[\]\) gives back the digital model"):
        deploy_model(model, "pcm-chip")
    deployment.use_analog([])
    assert deploy_model(model, "pcm-chip").profile.name == "pcm-chip"


def test_saving_a_deployed_model_says_to_give_back_the_digital_model(tmp_path):
    """save_pretrained of a programmed model wrote a folder without the analog layers' weights,
    which loaded as a model with random layers (HF's warning only)."""
    model = make_tiny_bert()
    deployment = deploy_model(model, "pcm")
    Chip(deployment, 0).drift_to("1d")
    with pytest.raises(ImcSimError, match=r"^bert\.encoder\.layer\.0\.attention\.self\.query is on tiles: "
                                          r"a deployed model has no weights to save"):
        model.save_pretrained(tmp_path / "deployed")
    deployment.use_analog([])
    model.save_pretrained(tmp_path / "digital")
    assert (tmp_path / "digital" / "model.safetensors").is_file()
