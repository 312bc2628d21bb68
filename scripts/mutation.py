"""mutmut's command line with a stack-depth test selection that runs on mutmut 3.8.1.

`max_stack_depth` in `[tool.mutmut]` counts a test for a function only when the function is
reached within that many frames of the project's own code. mutmut 3.8.1 walks the stack with
`Path(filename).resolve(strict=True)`, which raises for a frame of generated code (a dataclass's
`__init__` has the file name `<string>`), so its stats run stops part way (boxed/mutmut#570, not
released). This module counts only frames whose file exists and otherwise runs mutmut as is
(docs/mutation.md has the command).
"""

import inspect
import sys
from functools import cache
from pathlib import Path
from types import FrameType

import mutmut.mutation.trampoline as trampoline
import mutmut.stats as stats
from mutmut.__main__ import cli
from mutmut.configuration import config
from mutmut.state import state

_TEST_RUNNERS = ("pytest", "hammett", "unittest")


@cache
def _in_project(filename: str) -> bool:
    """Whether a frame's file is part of the mutated project (False for generated code: `<string>`)."""
    path = Path(filename)
    parents = path.resolve().parents if path.is_file() else ()
    return any(source in parents for source in config().resolved_mutated_source_paths)


def _project_depth(frame: FrameType | None, limit: int) -> int:
    """Frames of the mutated project's code between `frame` and the test runner, counted up to `limit`."""
    depth = 0
    while frame is not None and depth < limit:
        filename = frame.f_code.co_filename
        frame = frame.f_back
        if any(runner in filename for runner in _TEST_RUNNERS):
            break
        depth += _in_project(filename)
    return depth


def record_trampoline_hit(name: str, caller: str | None = None) -> None:
    """mutmut's stats hook: the running test reaches `name`, if within `max_stack_depth` project frames."""
    limit = config().max_stack_depth
    if limit != -1 and _project_depth(inspect.currentframe(), limit) >= limit:
        return
    state()._stats.add(name)
    if caller is not None and config().track_dependencies:
        state().function_dependencies[name].add(caller)


if __name__ == "__main__":
    stats.record_trampoline_hit = record_trampoline_hit
    trampoline.record_trampoline_hit = record_trampoline_hit
    sys.exit(cli())
