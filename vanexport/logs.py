"""Keep third-party chatter off stdout and out of reports: Polygraphy and the Python loggers of ONNX Runtime's tools.

Progress is ours to report (stderr, one line per step); stdout stays clean for reports and --json.
"""
from __future__ import annotations

import contextlib
import io
import logging


@contextlib.contextmanager
def quiet_polygraphy():
    """Polygraphy logs to stdout: only its errors, and those swallowed with the rest of its stdout."""
    from polygraphy.logger import G_LOGGER

    old = G_LOGGER.module_severity
    G_LOGGER.module_severity = G_LOGGER.ERROR
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        G_LOGGER.module_severity = old


@contextlib.contextmanager
def quiet_logger(name: str | None = None):
    """A Python logger (the root logger when `name` is None) raised to ERROR for the block."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


@contextlib.contextmanager
def discard_stdout():
    """Tools that print() their progress (ONNX Runtime's quantizer) print into nothing."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
