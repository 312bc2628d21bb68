"""Fake CUDA on a CPU build of torch: a training step that raises on any op mixing devices.

Under ``FakeTensorMode`` a tensor made with ``device="cuda:0"`` is a fake CUDA tensor (shape,
dtype and device, no data), and any operation mixing it with a CPU tensor raises
``FakeTensorDeviceMismatchError``. A CPU build lacks three things of a CUDA build, stood in for
here:

- CUDA's device guard, which Python indexing and autograd's graph recording ask for: c10's own
  ``FakeGuardImpl`` registered for CUDA by a four-line extension (native/fake_cuda_guard.cpp,
  compiled once into torch's extension cache);
- the autograd engine's CUDA streams: :func:`backward` walks the graph in Python instead, calling
  every node (built-in and custom) and checking each gradient's device as the engine does;
- CUDA generators: ``noise_generator`` records the device it is asked for and hands out None
  (fake tensors draw no numbers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

DEVICE = "cuda:0"
GUARD_SOURCE = Path(__file__).parent / "native" / "fake_cuda_guard.cpp"


def load_fake_guard() -> None:
    """Register the fake CUDA device guard (a failure under CI, else a named skip)."""
    from torch.utils.cpp_extension import load

    try:
        load(name="imc_sim_fake_cuda_guard", sources=[str(GUARD_SOURCE)], is_python_module=False)
    except Exception as exc:  # no compiler, or headers missing: the build fails in many ways
        reason = f"could not build the fake CUDA guard ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def fake_copy(t: torch.Tensor) -> torch.Tensor:
    """A fake CUDA tensor shaped like ``t`` (inside the mode)."""
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=DEVICE)


def move_to_fake_cuda(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter and buffer of ``model`` replaced by a fake CUDA one, in place (what
    ``model.to("cuda")`` does on a CUDA build); tied parameters stay tied."""
    done: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                if id(p) not in done:
                    done[id(p)] = torch.nn.Parameter(fake_copy(p), requires_grad=p.requires_grad)
                module._parameters[name] = done[id(p)]
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = fake_copy(b)
    return model


@contextmanager
def fake_cuda(monkeypatch) -> Iterator[list[torch.device]]:
    """Enter fake CUDA; yields the devices that noise generators were asked for."""
    import imc_sim.peft.stochgrasp.noise as stochgrasp_noise

    if torch.version.cuda is None:  # a CUDA build has the real guard
        load_fake_guard()
    asked: list[torch.device] = []

    def no_generator(seed: int, device: torch.device) -> None:
        asked.append(torch.device(device))

    monkeypatch.setattr(stochgrasp_noise, "noise_generator", no_generator)
    with FakeTensorMode(allow_non_fake_inputs=False):
        yield asked


def backward(loss: torch.Tensor) -> None:
    """``loss.backward()`` evaluated node by node, in topological order (see the module
    docstring); leaf gradients land in ``.grad`` as the engine would put them."""
    pending: dict[object, int] = {}
    stack, seen = [loss.grad_fn], {loss.grad_fn}
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is not None:
                pending[child] = pending.get(child, 0) + 1
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
    grads: dict[object, list] = {loss.grad_fn: [torch.ones_like(loss)]}
    ready = [loss.grad_fn]
    while ready:
        node = ready.pop()
        incoming = grads.pop(node)
        if hasattr(node, "variable"):  # AccumulateGrad: a leaf
            leaf = node.variable
            leaf.grad = incoming[0] if leaf.grad is None else leaf.grad + incoming[0]
            continue
        outputs = node.apply(*incoming) if hasattr(node, "_forward_cls") else node(*incoming)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        for (child, slot), grad in zip(node.next_functions, outputs, strict=False):
            if child is None:
                continue
            slots = grads.setdefault(child, [None] * len(child._input_metadata))
            if grad is not None:
                grad = _validated(grad, child._input_metadata[slot], node)
                slots[slot] = grad if slots[slot] is None else slots[slot] + grad
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)


def _validated(grad: torch.Tensor, meta, node) -> torch.Tensor:
    """The engine's check of a gradient against its input: same device (else an error), summed
    down to a broadcast input's shape, cast to its dtype."""
    if grad.device != meta.device:
        raise RuntimeError(f"{type(node).__name__} returned a gradient on {grad.device} for an "
                           f"input on {meta.device}")
    if tuple(grad.shape) != tuple(meta.shape):
        grad = grad.sum_to_size(meta.shape)
    return grad if grad.dtype == meta.dtype else grad.to(meta.dtype)
