"""The README's "From Python" example runs as it is written, on the packaged MiniLM, and does what
its comments say: two chips at three drift times, each sentence embedding pointing the digital
one's way but not equal to it, the chips different, and the digital model back at the end."""

from __future__ import annotations

import contextlib
import io
import re

import torch
from conftest import REPO


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one Python example"
    return blocks[0]


def test_the_readme_python_example_runs_and_says_what_it_does():
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), "README.md (From Python)", "exec"), namespace)  # noqa: S102
    rows = [line.split() for line in printed.getvalue().splitlines()]
    assert [(seed, t) for seed, t, _ in rows] == [(s, t) for s in ("0", "1") for t in ("1h", "1d", "1y")]
    cosines = [float(cosine) for _, _, cosine in rows]
    assert all(0 < c < 0.999 for c in cosines), cosines
    assert cosines[:3] != cosines[3:]  # two chips
    assert torch.equal(namespace["embed"](), namespace["digital"])  # use_analog([]): the digital model
    assert namespace["deployment"].programmed_seed == 1
