"""The one place where logging is configured.

Every event is a stable snake_case name with data as fields, and carries ``service`` and ``host``;
inside run work ``run_id`` is bound with ``structlog.contextvars.bound_contextvars``. Output is
JSON lines when stdout is not a terminal (journald keeps them, ``journalctl -o cat | jq`` reads
them) and a readable console rendering on a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _StaticFields:
    """Adds fixed fields (service, host) to every event without overriding bound ones."""

    def __init__(self, **fields: str) -> None:
        self._fields = fields

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        for key, value in self._fields.items():
            event_dict.setdefault(key, value)
        return event_dict


def configure_logging(
    service: str,
    host: str,
    *,
    level: str = "info",
    json_output: bool | None = None,
    stream: TextIO | None = None,
    processors: Sequence[Processor] = (),
) -> None:
    """Configure structlog (and the stdlib root logger) for one process.

    ``json_output=None`` picks JSON unless ``stream`` is a TTY. ``processors`` run on every event
    after its level is known (the daq.log mirror). Call once, from ``main()``.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; choose one of {', '.join(_LEVELS)}")
    out = stream if stream is not None else sys.stdout
    use_json = not out.isatty() if json_output is None else json_output
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _StaticFields(service=service, host=host),
        structlog.processors.add_log_level,
        *processors,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if use_json:
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(shared, renderer, out, _LEVELS[level])


def _route_stdlib_logging(
    shared: list[Processor], renderer: Processor, out: TextIO, level: int
) -> None:
    """Send third-party stdlib logs (pymongo, aiohttp) through the same renderer."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Library chatter below WARNING is noise for operators.
    root.setLevel(max(level, logging.WARNING))


def get_logger(**initial: Any) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger with optional initial bound fields."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(**initial)
    return logger
