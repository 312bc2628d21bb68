"""What the library says as it works (a deployment's mapping, before its sweep): records of the
``imc_sim`` logger at INFO. A Python caller sees them only where it configures logging; the
command line and the experiment scripts print them on stdout (:func:`print_reports`)."""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("imc_sim")


class _Stdout(logging.Handler):
    """Each record's message on ``sys.stdout`` as it is when the record comes (tests capture it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage())


def report(message: str) -> None:
    """Say ``message`` (an INFO record of the ``imc_sim`` logger)."""
    LOGGER.info(message)


def print_reports() -> None:
    """Print every report on stdout from now on in this process (once, however often called)."""
    if not any(isinstance(h, _Stdout) for h in LOGGER.handlers):
        LOGGER.addHandler(_Stdout())
        LOGGER.setLevel(logging.INFO)
