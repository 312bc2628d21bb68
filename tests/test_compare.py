"""imc_sim.deploy.compare: which checkpoints may be compared (the whole one-line refusal), what
``compare_checkpoints`` runs for each checkpoint and assembles, and the table it prints."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import forged

from imc_sim.deploy import compare
from imc_sim.deploy.compare import check_comparable, compare_checkpoints, format_compare_table
from imc_sim.deploy.results import CheckpointCurve, CompareResult, TimePoint
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError

TIMES = [1.0, 3600.0]
EVAL_LIMIT = 3  # of the tiny SST-2's 8 dev sentences


def test_compare_needs_a_checkpoint() -> None:
    with pytest.raises(ImcSimError) as exc:
        check_comparable([])
    assert str(exc.value) == "compare needs at least one checkpoint"


@pytest.mark.parametrize("change, message", [
    ({"task": "cola"}, "checkpoints trained on different tasks: {first} is sst2, {odd} is cola"),
    ({"base_fingerprint": {"params": 1}}, "checkpoints on different base models: {first} and {odd}"),
], ids=["task", "base"])
def test_a_mixed_checkpoint_is_named_against_the_first(change: dict[str, Any], message: str,
                                                        tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Two agreeing checkpoints, then the odd one: the message names the first and the odd one."""
    twin = forged(tiny_checkpoint, tmp_path / "twin.pt")
    odd = forged(tiny_checkpoint, tmp_path / "odd.pt", **change)
    with pytest.raises(ImcSimError) as exc:
        check_comparable([tiny_checkpoint, twin, odd])
    assert str(exc.value) == message.format(first=tiny_checkpoint, odd=odd)


def run_compare(paths: list[Path], glue: Path, **options: Any) -> CompareResult:
    return compare_checkpoints(paths, load_profile("pcm"), TIMES, 1, str(glue), EVAL_LIMIT, **options)


def test_each_checkpoint_is_deployed_as_alone_on_the_same_chips(tiny_checkpoint: Path, tiny_glue: Path,
                                                                 tmp_path: Path, monkeypatch, capsys) -> None:
    """Every option reaches every deploy; each curve, named after its file, is the one deploying
    that checkpoint alone gives; the task and metric are the checkpoints' (the first's)."""
    twin = forged(tiny_checkpoint, tmp_path / "twin-k4.pt")  # the same weights, not the same file
    calls: list[dict[str, Any]] = []

    def recording(*args: Any, **kwargs: Any):
        bound = inspect.signature(deploy_checkpoint).bind(*args, **kwargs)
        calls.append({k: bound.arguments.get(k) for k in ("path", "data_dir", "eval_limit", "progress",
                                                          "name", "torch_device")})
        return deploy_checkpoint(*args, **kwargs)

    monkeypatch.setattr(compare, "deploy_checkpoint", recording)
    cpu = torch.device("cpu")
    result = run_compare([tiny_checkpoint, twin], tiny_glue, progress=False, torch_device=cpu)
    assert "seeds x times" not in capsys.readouterr().err  # no progress bar
    assert calls == [{"path": p, "data_dir": str(tiny_glue), "eval_limit": EVAL_LIMIT, "progress": False,
                      "name": name, "torch_device": cpu}
                     for p, name in [(tiny_checkpoint, "grasp"), (twin, "twin-k4")]]
    alone = [deploy_checkpoint(p, load_profile("pcm"), TIMES, 1, str(tiny_glue), EVAL_LIMIT, progress=False,
                               name=p.stem) for p in (tiny_checkpoint, twin)]
    assert result == CompareResult("pcm", 1, alone[0].task, alone[0].metric_name,
                                   tuple(a.curve for a in alone))
    assert (result.task, result.metric_name) == ("sst2", "accuracy")


def test_progress_is_shown_by_default(tiny_checkpoint: Path, tiny_glue: Path, capsys) -> None:
    run_compare([tiny_checkpoint], tiny_glue)
    assert "pcm seeds x times" in capsys.readouterr().err


def curve(name: str, method: str, device_trained: str | None, digital: float,
          per_time: list[list[float]]) -> CheckpointCurve:
    """A hand-made curve at 1 s and 1 y (one metric per seed at each)."""
    points = tuple(TimePoint.of(t, v) for t, v in zip((1.0, 365 * 86400.0), per_time, strict=True))
    return CheckpointCurve(name, f"{name}.pt", method, device_trained, digital, points)


HAND_MADE = CompareResult("pcm", 2, "sst2", "accuracy", (
    curve("grasp-k4", "grasp", None, 0.9, [[0.9, 0.9], [0.8, 0.9]]),
    curve("aware", "device-aware", "pcm @ 1h..1y", 0.875, [[0.85, 0.85], [0.85, 0.85]]),
))


def test_compare_table_plain_and_markdown() -> None:
    """Percent with two decimals, mean +- sample std over the seeds; '-' where trained digitally."""
    assert format_compare_table(HAND_MADE) == "\n".join([
        "checkpoint  method        trained on    digital  1s             1y",
        "----------  ------------  ------------  -------  -------------  -------------",
        "grasp-k4    grasp         -             90.00    90.00 +- 0.00  85.00 +- 7.07",
        "aware       device-aware  pcm @ 1h..1y  87.50    85.00 +- 0.00  85.00 +- 0.00",
    ])
    assert format_compare_table(HAND_MADE, markdown=True) == "\n".join([
        "| checkpoint | method       | trained on   | digital | 1s            | 1y            |",
        "|------------|--------------|--------------|---------|---------------|---------------|",
        "| grasp-k4   | grasp        | -            | 90.00   | 90.00 +- 0.00 | 85.00 +- 7.07 |",
        "| aware      | device-aware | pcm @ 1h..1y | 87.50   | 85.00 +- 0.00 | 85.00 +- 0.00 |",
    ])
