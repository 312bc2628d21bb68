"""A deployed model on another device: everything moves with ``.to()``, and nothing mixes devices.

torch's CPU build cannot run CUDA, but its FakeTensorMode makes fake ``cuda`` tensors that carry
shapes, dtypes and devices and raise on any operation that mixes devices. On this build a few
tensor methods (Python indexing, ``copy_``, ``contiguous``, ``.to`` the same device) reach a CUDA
device guard that is not linked in; :class:`FakeCudaMethods` gives fake tensors those methods
through other operators (test harness only; the engine's own code needs none of it). The streams
hand out CPU generators there (a CUDA generator cannot be made on this build; fake tensors accept
them).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import make_tiny_bert
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.overrides import TorchFunctionMode

from imc_sim.crossbar import streams
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.deploy.chip import Chip
from imc_sim.devices.profile import Faults, load_profile


def _getitem(t: torch.Tensor, idx):
    """Basic indexing (ints, slices, None, Ellipsis) or all-tensor indexing through operators."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    if all(isinstance(i, torch.Tensor) for i in idx):
        return torch.ops.aten.index.Tensor(t, list(idx))
    if any(i is Ellipsis for i in idx):
        k = next(n for n, i in enumerate(idx) if i is Ellipsis)
        real = sum(1 for i in idx if i is not None and i is not Ellipsis)
        idx = idx[:k] + (slice(None),) * (t.dim() - real) + idx[k + 1 :]
    out, dim = t, 0
    for i in idx:
        if i is None:
            out, dim = out.unsqueeze(dim), dim + 1
        elif isinstance(i, int):
            out = out.select(dim, i)
        elif isinstance(i, slice):
            start, stop, step = i.indices(out.shape[dim])
            out, dim = torch.ops.aten.slice.Tensor(out, dim, start, max(stop, start), step), dim + 1
        else:
            raise NotImplementedError(f"index {i!r} in the fake-CUDA harness")
    return out


def _copy(dst: torch.Tensor, src: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:
    if src.device != dst.device:
        raise RuntimeError(f"copy_ from {src.device} to {dst.device}")
    return dst.zero_().add_(src.to(dst.dtype))


def _to(t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    device = kwargs.pop("device", None)
    rest = [a for a in args if not isinstance(a, str | torch.device)]
    device = next((a for a in args if isinstance(a, str | torch.device)), device)
    if device is not None and torch.device(device).type != t.device.type:
        raise RuntimeError(f".to({device}) of a tensor on {t.device} inside the fake-CUDA test")
    return torch.Tensor.to(t, *rest, **kwargs) if rest or kwargs else t


class FakeCudaMethods(TorchFunctionMode):
    """The tensor methods this CPU build cannot run on fake CUDA tensors, through other operators."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.__getitem__:
            return _getitem(*args)
        if func is torch.Tensor.copy_:
            return _copy(*args, **kwargs)
        if func is torch.Tensor.contiguous:
            t = args[0]
            return torch.zeros(t.shape, dtype=t.dtype, device=t.device).add_(t)
        if func is torch.Tensor.to:
            with torch._C.DisableTorchFunction():
                return _to(*args, **kwargs)
        return func(*args, **kwargs)


def cuda_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """The streams' generator, handed out on the CPU; inside the fake CUDA mode it must be asked
    for on CUDA (a stream that lost its device fails here)."""
    if detect_fake_mode() is not None:
        assert torch.device(device).type == "cuda", f"a generator on {device} for a fake CUDA chip"
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def fake_cuda(monkeypatch):
    """(mode, to_cuda): enter ``mode`` to compute on fake CUDA tensors; ``to_cuda`` for _apply."""
    monkeypatch.setattr(streams, "generator", cuda_generator)
    mode = FakeTensorMode(allow_non_fake_inputs=False)

    def to_cuda(t: torch.Tensor) -> torch.Tensor:
        return torch.empty(t.shape, dtype=t.dtype, device="cuda")

    return mode, to_cuda


def all_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


@pytest.mark.parametrize("profile", ["pcm", "fefet", "gaussian"])
def test_deployed_bert_programs_drifts_and_runs_on_fake_cuda(profile, fake_cuda):
    """A tiny BERT deployed (and programmed) on the CPU, moved to (fake) CUDA: every parameter and
    buffer is there, and programming, drift and the forward run there without mixing devices."""
    mode, to_cuda = fake_cuda
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile(profile))
    Chip(deployment, 0).program()
    with mode, FakeCudaMethods():
        model._apply(to_cuda)
        placed = {name: t.device.type for name, t in all_tensors(model).items()}
        assert set(placed.values()) == {"cuda"}, placed
        chip = Chip(deployment, 1)
        chip.program()
        chip.drift_to(86400.0)
        ids = torch.ones(3, 7, dtype=torch.long, device="cuda")
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        assert logits.device.type == "cuda" and logits.shape == (3, 2)
        layer = next(iter(deployment.layers.values()))
        assert layer.stack.packed is None  # the int8 product is CPU-only
        assert {t.device.type for t in all_tensors(model).values()} == {"cuda"}


def test_a_programmed_chip_on_cuda_holds_two_words_per_weight(fake_cuda):
    """Issue 11's memory target, an evaluation's weights plus one programmed copy: programmed,
    drifted and read on (fake) CUDA, a pcm layer keeps its targets and its current weights
    (4 + 4 bytes per weight of its tiles) and per-column or per-tile numbers, nothing else weight-sized:
    the programmed weights are programmed again when drift needs them, the live mask is a row and a
    column factor, the per-read variance is made per MVM."""
    mode, to_cuda = fake_cuda
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile("pcm"))  # with per-read noise
    with mode, FakeCudaMethods():
        model._apply(to_cuda)
        chip = Chip(deployment, 1)
        chip.program()
        chip.drift_to(86400.0)
        ids = torch.ones(3, 7, dtype=torch.long, device="cuda")
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        for layer in deployment.layers.values():
            kept = {id(t): t for t in layer.buffers()}
            stack = layer.stack
            kept |= {id(t): t for t in (stack.weights, stack.scales) if isinstance(t, torch.Tensor)}
            assert not isinstance(stack.read_var, torch.Tensor)  # the variance's law, not a tensor
            n = layer.target.numel()  # weights of its tiles, padding included
            weight_sized = [t for t in kept.values() if t.numel() >= n // 8]
            assert sum(t.numel() * t.element_size() for t in weight_sized) == 8 * n  # targets, weights
            smaller = sum(t.numel() for t in kept.values() if t.numel() < n // 8)
            assert smaller <= 8 * layer.n_tiles * (layer.rows + layer.grid.cols)  # per row and column


def test_a_large_fill_draws_every_chunk_on_the_streams_device(fake_cuda):
    """A fill of more than one CHUNK (the read noise of a RoBERTa-large layer) takes each chunk's
    generator on the stream's device, as a fill of one chunk does."""
    mode, _ = fake_cuda
    stream = streams.ChipStreams(0).stream("layer", "drift-read", "cuda", 0, 86400.0)
    with mode:
        for n in (5, 2 * streams.CHUNK + 5):
            z = stream.normal((n,))
            assert z.device.type == "cuda" and z.shape == (n,)


def test_a_cpu_tensor_in_the_fake_cuda_chip_is_caught(fake_cuda):
    """The harness really catches mixing: a layer whose bias stayed on the CPU fails its forward."""
    mode, to_cuda = fake_cuda
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile("pcm"))
    layer = next(iter(deployment.layers.values()))
    with mode, FakeCudaMethods():
        model._apply(to_cuda)
        Chip(deployment, 0).program()
        layer.bias = torch.zeros(layer.out_features, device="cpu")
        with pytest.raises(Exception, match="[Dd]evice"), torch.no_grad():
            layer(torch.ones(2, layer.in_features, device="cuda"))


def test_to_moves_every_parameter_and_buffer_of_a_deployed_model():
    """``.to(device)`` of a deployed, programmed and drifted model leaves nothing behind (meta
    here: a real device switch on any build)."""
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile("pcm"), analog_head=True)
    chip = Chip(deployment, 0)
    chip.program()
    chip.drift_to(3600.0)
    layer = next(iter(deployment.layers.values()))
    # pcm reads with per-read (PCM_READ) noise: every buffer of a programmed layer is filled
    assert layer.programmed is not None and layer.baseline is not None and layer.live is not None
    assert layer.stack.read_var is not None
    model.to("meta")
    placed = {name: t.device.type for name, t in all_tensors(model).items()}
    assert set(placed.values()) == {"meta"}, placed
    assert layer.read_stream.device.type == "meta" and layer._stack is None


def test_chip_effects_calibrate_program_and_run_on_fake_cuda(fake_cuda):
    """pcm-chip (two device pairs per weight, static input ranges) with faults: calibration,
    programming, drift and the forward all run on (fake) CUDA without mixing devices."""
    mode, to_cuda = fake_cuda
    profile = dataclasses.replace(load_profile("pcm-chip"),
                                  faults=Faults(stuck_low=0.01, stuck_high=0.01, dead_columns=0.01))
    model = make_tiny_bert()
    deployment = deploy_model(model, profile)
    with mode, FakeCudaMethods():
        model._apply(to_cuda)
        ids = torch.ones(3, 7, dtype=torch.long, device="cuda")
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        deployment.calibrate([batch])
        Chip(deployment, 1).drift_to(86400.0)
        with torch.no_grad():
            logits = model(**batch).logits
        assert logits.device.type == "cuda" and logits.shape == (3, 2)
        layer = next(iter(deployment.layers.values()))
        assert layer.stuck is not None and layer.input_ranges is not None
        assert {t.device.type for t in all_tensors(model).values()} == {"cuda"}
