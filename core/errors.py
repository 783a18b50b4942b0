"""The small set of domain errors straxd raises and catches.

Each unit of work (a run, a chunk, a config reload) catches ``StraxdError`` at exactly one
boundary; anything else is a bug and propagates. ``asyncio.CancelledError`` is never caught here.
"""

from __future__ import annotations


class StraxdError(Exception):
    """Base class of every error straxd expects and handles."""


class DataCorrupted(StraxdError):
    """Stored data (a chunk file or its metadata) cannot be read as what it claims to be."""


class DataNotAvailable(StraxdError):
    """The requested data is absent, incomplete or marked broken."""


class OutputExists(StraxdError):
    """An output folder already exists and the overwrite rule forbids replacing it."""

    def __init__(self, path: str, message: str | None = None) -> None:
        self.path = path
        super().__init__(message or f"output already exists: {path}")


class BadInput(StraxdError):
    """Input data (live_data, a run document, arrays handed to storage) violates its contract."""


class ChunkError(BadInput):
    """Chunks that overlap, are out of order or hold rows outside their [start, end)."""


class CannotSplit(ChunkError):
    """A chunk cannot be split at the requested time because a row straddles it."""


class ConfigInvalid(StraxdError):
    """A settings file or runtime config document failed validation."""


class LeaseLost(StraxdError):
    """A fenced write matched nothing: another host or a newer epoch owns the run now."""


class RunNotFound(StraxdError):
    """No run document with the requested number exists."""
