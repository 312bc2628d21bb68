"""Shared pieces of the experiment scripts: cached training runs, dev batches, result files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imc_sim import data
from imc_sim.atomic import write_text_atomic
from imc_sim.tasks import TaskSpec
from imc_sim.train import TrainArgs, train_cached

RESULTS = Path(__file__).resolve().parent / "results"


def trained_checkpoint(name: str, args: TrainArgs, fresh: bool = False) -> Path:
    """Train ``args`` once and keep ``results/checkpoints/<name>.pt``; reuse it afterwards."""
    return train_cached(RESULTS / "checkpoints" / f"{name}.pt", args, fresh)


def dev_batches(task: TaskSpec, tokenizer, data_dir: str, limit: int | None) -> list[dict]:
    """The dev set, tokenized once, in evaluation batches of 128."""
    return data.eval_batches(data.encode(data.load_split(task, "dev", data_dir, limit), tokenizer, 64))


def summary(values: list[float]) -> dict[str, Any]:
    """metrics (one per seed), their mean and (population) std."""
    n = len(values)
    mean = sum(values) / n
    return {"metrics": values, "mean": mean,
            "std": (sum((v - mean) ** 2 for v in values) / n) ** 0.5}


def write_json(name: str, payload: dict) -> Path:
    path = RESULTS / f"{name}.json"
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return path
