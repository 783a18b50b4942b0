"""Process settings: environment (``STRAXD_*``), an optional TOML file, then defaults.

These are read once at start-up; changing them needs a restart. What DAQ experts tune while the
daemons run lives in the runtime config documents in the daq database instead.

Precedence, highest first: values passed to the constructor (the CLI), ``STRAXD_*`` environment
variables, the TOML file named by ``--config FILE`` or ``STRAXD_CONFIG``, the defaults below.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from straxd.core.errors import ConfigInvalid

ENV_PREFIX = "STRAXD_"
CONFIG_FILE_ENV = "STRAXD_CONFIG"

# Keys a URI file may hold; a bare URI line means ``mongo_uri``.
_URI_FILE_KEYS = ("mongo_uri", "daq_mongo_uri")


class Settings(BaseSettings):
    """Settings shared by every straxd service (see DESIGN.md, "Settings")."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )
    # Set per load by ``load_settings``; pydantic-settings reads it in settings_customise_sources.
    _toml_file: ClassVar[Path | None] = None

    mongo_uri: str = Field(
        default="mongodb://127.0.0.1:27017/", description="MongoDB URI of the runs database"
    )
    daq_mongo_uri: str | None = Field(
        default=None, description="MongoDB URI of the daq database (default: mongo_uri)"
    )
    mongo_uri_file: Path | None = Field(
        default=None, description="file holding the URI(s) with credentials (mode 0600)"
    )
    state_dir: Path = Field(
        default=Path("/var/lib/straxd"), description="per-host lock files, per-run child logs"
    )
    runs_db: str = Field(default="xenonnt", description="name of the runs database")
    daq_db: str = Field(default="daq", description="name of the daq database")
    live_dir: Path = Field(default=Path("/live_data/xenonnt"), description="redax output (CEPH)")
    pre_dir: Path = Field(
        default=Path("/data/pre_processed"), description="bootstrax output (local to each host)"
    )
    output_dir: Path = Field(
        default=Path("/data/xenonnt_processed"), description="restrax output (production)"
    )
    unregistered_dir: Path = Field(
        default=Path("/data/xenonnt_unregistered"), description="ajax quarantine"
    )
    host: str = Field(default_factory=socket.getfqdn, description="this host's name in the DB")

    @field_validator("runs_db", "daq_db", "host")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: constructor, environment, TOML file, defaults."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)

    def runs_uri(self) -> str:
        """The runs-database URI, taken from ``mongo_uri_file`` when that is set."""
        return self._uris_from_file().get("mongo_uri", self.mongo_uri)

    def daq_uri(self) -> str:
        """The daq-database URI: its own setting, else the runs-database URI."""
        from_file = self._uris_from_file()
        return from_file.get("daq_mongo_uri") or self.daq_mongo_uri or self.runs_uri()

    def _uris_from_file(self) -> dict[str, str]:
        if self.mongo_uri_file is None:
            return {}
        return read_uri_file(self.mongo_uri_file)

    def lock_path(self, service: str) -> Path:
        """The one-instance lock file of ``service`` on this host."""
        return self.state_dir / f"{service}-{self.host}.lock"


def read_uri_file(path: Path) -> dict[str, str]:
    """Read MongoDB URIs from a credentials file that only its owner may read.

    The file holds ``key = value`` lines (keys ``mongo_uri``, ``daq_mongo_uri``) or a single bare
    URI meaning ``mongo_uri``; ``#`` starts a comment.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as err:
        raise ConfigInvalid(f"cannot read URI file {path}: {err.strerror}") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigInvalid(
            f"URI file {path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
            "it holds credentials: chmod 600 it"
        )
    uris: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip() in _URI_FILE_KEYS:
            uris[key.strip()] = value.strip().strip("\"'")
        elif line.startswith(("mongodb://", "mongodb+srv://")) and "mongo_uri" not in uris:
            uris["mongo_uri"] = line
        else:
            raise ConfigInvalid(
                f"URI file {path} line {lineno}: expected 'mongo_uri = ...', "
                "'daq_mongo_uri = ...' or a bare mongodb:// URI"
            )
    if not uris:
        raise ConfigInvalid(f"URI file {path} holds no URI")
    return uris


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings, validating everything at once.

    ``config_file`` (or ``STRAXD_CONFIG``) names an optional TOML file of plain ``key = value``
    pairs using the field names (``live_dir = "/live_data/xenonnt"``). Raises ConfigInvalid with
    every problem listed, so a daemon can exit 2 with a clear message.
    """
    chosen = config_file if config_file is not None else os.environ.get(CONFIG_FILE_ENV)
    toml_path = Path(chosen) if chosen else None
    if toml_path is not None and not toml_path.is_file():
        raise ConfigInvalid(f"settings file {toml_path} does not exist")

    class _Loaded(Settings):
        _toml_file: ClassVar[Path | None] = toml_path

    try:
        loaded = _Loaded(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        where = f" (file {toml_path})" if toml_path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigInvalid(f"invalid settings{where}: {problems}") from None
    except ValueError as err:  # a TOML syntax error surfaces as a ValueError subclass
        raise ConfigInvalid(f"settings file {toml_path} is not valid TOML: {err}") from None
    return loaded


def settings_for_cli(prog: str, config_file: Path | None) -> Settings | None:
    """The settings for a command, or None after printing why they are invalid (exit 2)."""
    try:
        return load_settings(config_file)
    except ConfigInvalid as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return None
