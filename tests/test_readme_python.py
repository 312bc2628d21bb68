"""The README's "From Python" example runs as it is written, on the packaged MiniLM, and prints
what the text beside it says: the digital similarities, then two chips at three drift times with
the numbers quoted for chip 0, and the digital model back at the end."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
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
    lines = printed.getvalue().splitlines()
    digital = json.loads(lines[0].removeprefix("digital "))
    rows = {tuple(line.split()[:2]): json.loads(line.split(" ", 2)[2]) for line in lines[1:]}
    assert list(rows) == [(s, t) for s in ("0", "1") for t in ("1h", "1d", "1y")]
    # the numbers the README quotes, to their two decimals (float sums may differ in the last bits
    # on another CPU)
    quotes = [(digital, [0.73, -0.07]), (rows["0", "1h"], [0.73, 0.64]), (rows["0", "1y"], [0.62, 0.62])]
    for got, quoted in quotes:
        assert got == pytest.approx(quoted, abs=0.006), (got, quoted)
    assert rows["1", "1h"] != rows["0", "1h"]  # two chips
    assert namespace["similarities"]() == digital  # use_analog([]): the digital model
    assert namespace["deployment"].programmed_seed == 1
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "Digitally the paraphrase scores 0.73 and the tax form -0.07" in readme
    assert "chip 0 gives 0.73 and 0.64\nafter an hour, 0.62 and 0.62 after a year" in readme
