"""structlog configuration, done once per process in ``main()``.

JSON lines to stdout when stdout is not a terminal (services, journald), a console
renderer on a terminal. One line per event; nothing logs per frame.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "auto", stream: object = None) -> None:
    out = stream if stream is not None else sys.stdout
    is_tty = bool(getattr(out, "isatty", lambda: False)())
    renderer: structlog.types.Processor
    if fmt == "json" or (fmt == "auto" and not is_tty):
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=is_tty)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Third-party libraries log through stdlib logging; keep their chatter out of our stream.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
