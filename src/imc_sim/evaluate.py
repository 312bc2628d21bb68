"""Digital evaluation: logits over a list of batches, and the task metric."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from imc_sim.errors import NonFiniteOutputs
from imc_sim.lm import perplexity
from imc_sim.metrics import compute_metric
from imc_sim.tasks import TaskSpec


@torch.no_grad()
def logits_and_labels(model: nn.Module, batch_list: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` in eval mode over ``batch_list``; concatenated logits and labels.
    Raises :class:`NonFiniteOutputs` when a logit is NaN or infinite."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in batch_list:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits.append(model(**inputs).logits.float())
        labels.append(batch["labels"])
    model.train(was_training)
    out = torch.cat(logits)
    bad = int((~torch.isfinite(out)).flatten(1).any(1).sum())
    if bad:
        raise NonFiniteOutputs(f"the model's outputs are NaN or infinite for {bad} of {len(out)} examples")
    return out.cpu().numpy(), torch.cat(labels).cpu().numpy()


def evaluate(model: nn.Module, batch_list: list[dict], task: TaskSpec) -> float:
    """The task metric of ``model`` on ``batch_list`` (e.g. SST-2 dev accuracy in [0, 1]; held-out
    perplexity for ``lm``)."""
    if task.is_lm:
        return perplexity(model, batch_list)
    logits, labels = logits_and_labels(model, batch_list)
    return compute_metric(task.metric_name, logits, labels)
