"""Greedy continuations of a language-model checkpoint, digitally and on chip seed 0 after each
drift time (``imc-sim deploy/compare --generate N --prompt TEXT``): a look at what the drift does
to the text, beside the perplexity."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from imc_sim import data
from imc_sim.checkpoint import load_model
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.deploy.range_source import check_source, set_input_ranges
from imc_sim.deploy.run import dev_set
from imc_sim.deploy.sweep import drift_sweep, sweep_arguments
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.lm import greedy_continuation
from imc_sim.units import format_time

SEED = 0


@dataclass(frozen=True)
class Continuations:
    """For each prompt, its continuation digitally and at each drift time (chip seed 0)."""

    name: str
    prompts: tuple[str, ...]
    digital: tuple[str, ...]
    times: tuple[float, ...]
    on_chip: tuple[tuple[str, ...], ...]
    """``on_chip[k][i]``: prompt ``i`` at ``times[k]``."""

    def format(self) -> str:
        lines = [f"greedy continuations of {self.name} (chip seed {SEED}):"]
        for i, prompt in enumerate(self.prompts):
            lines.append(f"  prompt: {prompt!r}")
            lines.append(f"    {'digital':>8}: {self.digital[i]!r}")
            lines += [f"    {format_time(t):>8}: {texts[i]!r}"
                      for t, texts in zip(self.times, self.on_chip, strict=True)]
        return "\n".join(lines)


def continuations_under_drift(path: str | os.PathLike[str], profile: DeviceProfile | str,
                              times: Sequence[str | float], prompts: Sequence[str], new_tokens: int,
                              analog_head: bool = False, name: str | None = None,
                              source: data.DataSource | None = None, eval_limit: int | None = None,
                              input_ranges: str = "auto") -> Continuations:
    """Load ``path`` afresh, continue every prompt digitally, then program it as the sweep programs
    chip seed 0 (the same noise, and on a static-range profile the same ranges: ``source``,
    ``eval_limit`` and ``input_ranges`` as :func:`~imc_sim.deploy.run.deploy_checkpoint`'s) and
    continue every prompt after each drift time (seconds, or text such as ``'1d'``)."""
    profile, checked, _ = sweep_arguments(profile, times, 1)
    check_source(input_ranges)
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ImcSimError(f"prompts is a non-empty list of texts, not {prompts!r}")
    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 1:
        raise ImcSimError(f"new_tokens is a count of tokens, at least 1, not {new_tokens!r}")
    loaded = load_model(path)
    if not loaded.task.is_lm:
        raise ImcSimError(f"{path}: continuations need a language-model (--task lm) checkpoint, "
                          f"this one is {loaded.task.name}")
    model, tokenizer = loaded.model, loaded.tokenizer
    digital = tuple(greedy_continuation(model, tokenizer, p, new_tokens) for p in prompts)
    deployment = deploy_model(model, profile, analog_head)
    if any(layer.static_ranges for layer in deployment.layers.values()):
        batches, _ = dev_set(loaded, source or data.DataSource(), eval_limit)
        set_input_ranges(deployment, loaded, batches, input_ranges, str(path))
    on_chip: list[tuple[str, ...]] = []

    def measure() -> float:
        on_chip.append(tuple(greedy_continuation(deployment.model, tokenizer, p, new_tokens)
                             for p in prompts))
        return 0.0

    drift_sweep(deployment, measure, [SEED], checked, progress=False)
    return Continuations(name or str(path), tuple(prompts), digital, tuple(checked), tuple(on_chip))
