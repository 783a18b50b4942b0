"""Process settings: precedence, TOML file, URI file, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from straxd.core.errors import ConfigInvalid
from straxd.core.settings import load_settings, read_uri_file


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("STRAXD_"):
            monkeypatch.delenv(key)


class TestSources:
    def test_defaults_match_design(self) -> None:
        """Without any source the defaults of DESIGN.md apply."""
        s = load_settings()
        assert s.mongo_uri == "mongodb://127.0.0.1:27017/"
        assert (s.runs_db, s.daq_db) == ("xenonnt", "daq")
        assert s.live_dir == Path("/live_data/xenonnt")
        assert s.pre_dir == Path("/data/pre_processed")
        assert s.output_dir == Path("/data/xenonnt_processed")
        assert s.unregistered_dir == Path("/data/xenonnt_unregistered")
        assert s.state_dir == Path("/var/lib/straxd")
        assert s.host
        assert s.daq_uri() == s.runs_uri() == s.mongo_uri

    def test_env_overrides_toml_and_toml_overrides_defaults(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Precedence is constructor > STRAXD_* environment > TOML file > defaults."""
        cfg = tmp_path / "straxd.toml"
        cfg.write_text('runs_db = "from_toml"\ndaq_db = "daq_toml"\nlive_dir = "/x/live"\n')
        monkeypatch.setenv("STRAXD_RUNS_DB", "from_env")
        monkeypatch.setenv("STRAXD_CONFIG", str(cfg))
        s = load_settings(host="given")
        assert s.runs_db == "from_env"
        assert s.daq_db == "daq_toml"
        assert s.live_dir == Path("/x/live")
        assert s.host == "given"

    def test_settings_are_frozen(self) -> None:
        """Settings cannot be changed after start-up."""
        s = load_settings()
        with pytest.raises(ValueError, match="frozen"):
            s.runs_db = "other"  # type: ignore[misc]

    def test_daq_uri_defaults_to_runs_uri(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """STRAXD_DAQ_MONGO_URI falls back to STRAXD_MONGO_URI."""
        monkeypatch.setenv("STRAXD_MONGO_URI", "mongodb://runs:1/")
        assert load_settings().daq_uri() == "mongodb://runs:1/"
        monkeypatch.setenv("STRAXD_DAQ_MONGO_URI", "mongodb://daq:2/")
        assert load_settings().daq_uri() == "mongodb://daq:2/"

    def test_lock_path_names_service_and_host(self, tmp_path: Path) -> None:
        """The one-instance lock file is <state_dir>/<service>-<host>.lock."""
        s = load_settings(state_dir=tmp_path, host="eb3")
        assert s.lock_path("bootstrax") == tmp_path / "bootstrax-eb3.lock"


class TestBadSettings:
    def test_unknown_toml_key_is_rejected(self, tmp_path: Path) -> None:
        """A typo in the settings file is an error naming the key, not silently ignored."""
        cfg = tmp_path / "s.toml"
        cfg.write_text('live_dri = "/x"\n')
        with pytest.raises(ConfigInvalid, match="live_dri"):
            load_settings(cfg)

    def test_toml_syntax_error_names_file(self, tmp_path: Path) -> None:
        """A broken TOML file gives an error naming the file."""
        cfg = tmp_path / "broken.toml"
        cfg.write_text("runs_db = \n")
        with pytest.raises(ConfigInvalid, match=r"broken\.toml"):
            load_settings(cfg)

    def test_missing_settings_file(self, tmp_path: Path) -> None:
        """A settings file that does not exist is an error, not defaults."""
        with pytest.raises(ConfigInvalid, match="does not exist"):
            load_settings(tmp_path / "nope.toml")

    def test_empty_db_name_rejected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty database name is rejected with the field named."""
        monkeypatch.setenv("STRAXD_RUNS_DB", " ")
        with pytest.raises(ConfigInvalid, match="runs_db"):
            load_settings()


class TestUriFile:
    def test_reads_both_uris(self, tmp_path: Path) -> None:
        """key = value lines give the runs and daq URIs."""
        f = tmp_path / "uri"
        f.write_text(
            "# creds\nmongo_uri = mongodb://u:p@h:1/\ndaq_mongo_uri = mongodb://u:p@d:2/\n"
        )
        f.chmod(0o600)
        s = load_settings(mongo_uri_file=f)
        assert s.runs_uri() == "mongodb://u:p@h:1/"
        assert s.daq_uri() == "mongodb://u:p@d:2/"

    def test_bare_uri_means_runs_uri(self, tmp_path: Path) -> None:
        """A single bare URI line is the runs URI, and the daq URI follows it."""
        f = tmp_path / "uri"
        f.write_text("mongodb://u:p@h:1/\n")
        f.chmod(0o600)
        assert read_uri_file(f) == {"mongo_uri": "mongodb://u:p@h:1/"}
        assert load_settings(mongo_uri_file=f).daq_uri() == "mongodb://u:p@h:1/"

    def test_group_readable_file_refused(self, tmp_path: Path) -> None:
        """A credentials file readable by others is refused, and the message says how to fix it."""
        f = tmp_path / "uri"
        f.write_text("mongodb://u:p@h:1/\n")
        f.chmod(0o640)
        with pytest.raises(ConfigInvalid, match="chmod 600"):
            read_uri_file(f)

    def test_garbage_line_refused(self, tmp_path: Path) -> None:
        """An unparseable line is reported with its number, without echoing its content."""
        f = tmp_path / "uri"
        f.write_text("mongodb://u:secret@h:1/\npassword=hunter2\n")
        f.chmod(0o600)
        with pytest.raises(ConfigInvalid, match="line 2") as info:
            read_uri_file(f)
        assert "hunter2" not in str(info.value)
        assert "secret" not in str(info.value)


class TestExampleFile:
    def test_example_settings_file_loads(self) -> None:
        """config/straxd.example.toml is valid and matches the defaults it documents."""
        example = Path(__file__).resolve().parents[2] / "config" / "straxd.example.toml"
        assert load_settings(example).model_dump(exclude={"host"}) == load_settings().model_dump(
            exclude={"host"}
        )
