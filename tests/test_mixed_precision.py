"""Every training method under bf16 and fp16 autocast (on the CPU here): a finite loss, and a
finite gradient in the parameter's own dtype on every trainable parameter."""

import pytest
import torch
from conftest import make_tiny_bert, make_tiny_gpt2

from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.peft.grasp import GraspLayer
from imc_sim.training.loop import TrainArgs, prepare
from imc_sim.training.precision import Precision

VARIANTS = {
    "grasp": ("grasp", {"k": 4}),
    "grasp-w-weights": ("grasp-w", {"k": 4, "sampling": "weights"}),
    "grasp-w-outputs": ("grasp-w", {"k": 4, "sampling": "outputs"}),
    "stochgrasp-weights": ("stochgrasp", {"k": 4, "sampling": "weights"}),
    "stochgrasp-outputs": ("stochgrasp", {"k": 4, "sampling": "outputs"}),
    "lora": ("lora", {}),
    "ia3": ("ia3", {}),
    "bitfit": ("bitfit", {}),
    "full": ("full", {}),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_step(model, method, config, dtype):
    ids = torch.randint(1, 100, (4, 9), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=dtype):
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                    labels=torch.tensor([0, 1, 1, 0]))
        extra = method.extra_loss(model, config)
        loss = out.loss if extra is None else out.loss + extra
    loss.backward()
    return loss


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_step_under_autocast(variant, dtype):
    name, options = VARIANTS[variant]
    method = get_method(name)
    config = method.make_config({"seed": 0, **options})
    model = method.attach(make_tiny_bert(), config).train()
    loss = autocast_step(model, method, config, DTYPES[dtype])
    assert torch.isfinite(loss)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for param_name, p in trainable:
        assert p.grad is not None, param_name
        assert p.grad.dtype == p.dtype == torch.float32, param_name
        assert torch.isfinite(p.grad).all(), param_name
    assert any(p.grad.abs().sum() > 0 for n, p in trainable if "classifier" not in n)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_grasp_on_gpt2_conv1d_under_autocast(dtype):
    method = get_method("grasp")
    config = method.make_config({"seed": 0, "k": 4})
    model = method.attach(make_tiny_gpt2(), config).train()
    assert torch.isfinite(autocast_step(model, method, config, DTYPES[dtype]))
    layer = next(m for m in model.modules() if isinstance(m, GraspLayer))
    assert torch.isfinite(layer.gamma.grad).all() and layer.gamma.grad.abs().sum() > 0


def test_grasp_gradients_under_bf16_match_fp32():
    """The grouped sums over tokens run in fp32: bf16 activations change them only by bf16's
    rounding of the activations (a few parts in a thousand), not by a bf16 accumulation."""
    method = get_method("grasp")
    config = method.make_config({"seed": 0, "k": 4})
    grads = {}
    for dtype in (None, torch.bfloat16):
        model = method.attach(make_tiny_bert(), config).train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        ids = torch.randint(1, 100, (8, 16), generator=torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model(input_ids=ids, labels=torch.ones(8, dtype=torch.long)).loss
        loss.backward()
        grads[dtype] = torch.cat([m.gamma.grad for m in model.modules() if isinstance(m, GraspLayer)])
    error = (grads[torch.bfloat16] - grads[None]).norm() / grads[None].norm()
    assert error < 0.05


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_train_loop_steps_in_mixed_precision(precision, tiny_model_dir, tiny_glue):
    run = prepare(TrainArgs(method="stochgrasp", model=str(tiny_model_dir), data_dir=str(tiny_glue),
                            max_steps=3, batch_size=8, mixed_precision=precision,
                            torch_device="cpu", method_options={"k": 4, "sampling": "outputs"}))
    before = {n: p.detach().clone() for n, p in run.model.named_parameters() if p.requires_grad}
    for _ in range(3):
        task_loss, extra = run.step()
        assert torch.isfinite(task_loss) and torch.isfinite(extra)
    moved = [n for n, p in run.model.named_parameters()
             if p.requires_grad and not torch.equal(p, before[n])]
    assert any(n.endswith(".mu") for n in moved) and any(n.endswith(".sigma_raw") for n in moved)


@pytest.mark.parametrize(("text", "dtype", "scale"), [
    ("no", torch.float32, 1.0), ("bf16", torch.bfloat16, 1.0), ("fp16", torch.float16, 2.0 ** 16)])
def test_a_precision_autocasts_to_its_dtype_and_scales_the_loss_for_fp16_only(text, dtype, scale):
    precision = Precision.parse(text, torch.device("cpu"))
    a = torch.ones(2, 2)
    with precision.autocast():
        assert torch.mm(a, a).dtype == dtype
    scaler = precision.scaler()
    assert scaler.is_enabled() == (text == "fp16")
    assert scaler.scale(torch.tensor(1.0)).item() == scale  # on the CPU: a CUDA scaler is off here


def test_an_unknown_precision_names_the_three():
    with pytest.raises(ImcSimError) as info:
        Precision.parse("fp8", torch.device("cpu"))
    assert str(info.value) == "--mixed-precision must be one of no, bf16, fp16; got 'fp8'"
