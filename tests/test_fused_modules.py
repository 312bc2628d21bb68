"""Adapters and device-aware training on torch's own Transformer encoder: nn.MultiheadAttention
reads its output projection's weight without calling it, and the encoder's fused inference path
reads every layer's weight, so an adapter there would be bypassed or break the forward."""

import pytest
import torch
from torch import nn

from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.peft.inject import adapter_layers
from imc_sim.peft.targets import find_targets
from imc_sim.training.analog_layers import analog_layers

INPUT = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))
PADDING = torch.tensor([[False] * 5, [False] * 4 + [True]])  # what sends eval into the fused path
KEPT = ~PADDING  # the fused path leaves zeros at padded positions
FEED_FORWARD = ["layers.0.linear1", "layers.0.linear2", "layers.1.linear1", "layers.1.linear2"]


def encoder() -> nn.TransformerEncoder:
    torch.manual_seed(0)
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2).eval()


def test_presets_leave_out_the_attention_projection():
    assert find_targets(encoder(), "all-linear") == FEED_FORWARD
    assert [name for name, _ in analog_layers(encoder())] == FEED_FORWARD


def test_a_pattern_naming_the_attention_projection_is_refused():
    with pytest.raises(ImcSimError, match="layers.0.self_attn.out_proj, layers.1.self_attn.out_proj: "
                                          "nn.MultiheadAttention reads"):
        find_targets(encoder(), "out_proj,linear1")
    assert find_targets(encoder(), "linear1") == FEED_FORWARD[::2]


@pytest.mark.parametrize("method", ["grasp", "grasp-w", "stochgrasp"])
def test_adapters_compute_in_the_encoders_inference_path(method):
    """With the fused path on, eval under no_grad reads linear1.weight (an adapter has none); the
    adapters must compute there, so moving their parameters moves the output."""
    base = encoder()
    with torch.no_grad():
        digital = base(INPUT, src_key_padding_mask=PADDING)[KEPT]
    chosen = get_method(method)
    model = chosen.attach(encoder(), chosen.make_config({"k": 4}))
    assert [name for name, _ in adapter_layers(model)] == FEED_FORWARD
    with torch.no_grad():
        start = model(INPUT, src_key_padding_mask=PADDING)[KEPT]
        assert torch.allclose(start, digital, atol=0.05)  # StochGRASP draws its small noise
        draws = torch.Generator().manual_seed(2)
        for param in model.parameters():  # at random: a uniform shift of every weight is lost in LayerNorm
            if param.requires_grad:
                param.add_(0.3 * torch.randn(param.shape, generator=draws))
        moved = model(INPUT, src_key_padding_mask=PADDING)[KEPT]
    assert (moved - digital).abs().max() > 0.3
