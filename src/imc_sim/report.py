"""What the library says as it works (a deployment's mapping, before its sweep): records of the
``imc_sim`` logger at INFO. A Python caller sees them only where it configures logging; the
command line and the experiment scripts print them on stdout while they run (:func:`printing_reports`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = logging.getLogger("imc_sim")


class _Stdout(logging.Handler):
    """Each record's message on ``sys.stdout`` as it is when the record comes (tests capture it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage())


def report(message: str) -> None:
    """Say ``message`` (an INFO record of the ``imc_sim`` logger)."""
    LOGGER.info(message)


@contextmanager
def printing_reports() -> Iterator[None]:
    """Reports printed on stdout while the block runs (a command, a script), as before afterwards."""
    handler, level = _Stdout(), LOGGER.level
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
