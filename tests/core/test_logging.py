"""Logging: JSON lines for journald with service, host and bound run_id."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from straxd.core.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _reset_structlog() -> None:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    logging.getLogger().handlers.clear()


class TestJsonOutput:
    def test_event_has_service_host_level_and_fields(self) -> None:
        """Each line is one JSON object with event name, data fields, service and host."""
        out = io.StringIO()
        configure_logging("bootstrax", "eb3", stream=out)
        get_logger().info("run_claimed", epoch=4)
        event = json.loads(out.getvalue().splitlines()[-1])
        assert event["event"] == "run_claimed"
        assert event["epoch"] == 4
        assert (event["service"], event["host"], event["level"]) == ("bootstrax", "eb3", "info")
        assert event["timestamp"].endswith("Z")

    def test_bound_run_id_is_carried(self) -> None:
        """run_id bound with contextvars appears in every event of that unit of work."""
        out = io.StringIO()
        configure_logging("bootstrax", "eb3", stream=out)
        with structlog.contextvars.bound_contextvars(run_id="000042"):
            get_logger().warning("chunk_slow", chunk_i=3)
        get_logger().info("idle")
        first, second = (json.loads(line) for line in out.getvalue().splitlines())
        assert first["run_id"] == "000042"
        assert "run_id" not in second

    def test_level_filters(self) -> None:
        """Events below the configured level are dropped."""
        out = io.StringIO()
        configure_logging("ajax", "eb0", level="warning", stream=out)
        get_logger().info("quiet")
        get_logger().error("loud")
        lines = out.getvalue().splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["loud"]

    def test_exception_is_structured(self) -> None:
        """A logged exception becomes a structured field, still one JSON line."""
        out = io.StringIO()
        configure_logging("restrax", "eb1", stream=out)
        try:
            raise RuntimeError("disk full")
        except RuntimeError:
            get_logger().exception("run_failed")
        (line,) = out.getvalue().splitlines()
        event = json.loads(line)
        assert "disk full" in json.dumps(event["exception"])

    def test_stdlib_warnings_use_same_format(self) -> None:
        """Third-party stdlib logging comes out as JSON with service and host too."""
        out = io.StringIO()
        configure_logging("microstrax", "eb2", stream=out)
        logging.getLogger("pymongo.test").warning("server %s down", "db1")
        event = json.loads(out.getvalue().splitlines()[-1])
        assert event["event"] == "server db1 down"
        assert event["service"] == "microstrax"

    def test_unknown_level_rejected(self) -> None:
        """A misspelt level is a clear error."""
        with pytest.raises(ValueError, match="unknown log level"):
            configure_logging("x", "y", level="verbose")


class TestConsoleOutput:
    def test_console_renderer_is_not_json(self) -> None:
        """json_output=False renders a readable line with the event name."""
        out = io.StringIO()
        configure_logging("straxer", "laptop", json_output=False, stream=out)
        get_logger().info("processing_started", run_id="000001")
        text = out.getvalue()
        assert "processing_started" in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
