"""A minimal service run by the lifecycle tests as a real process.

It prints one JSON line per state change on stdout, so the test can wait on lines instead of
sleeping. argv: lock_path mode, where mode is "drain" (finish after stop) or "hang" (ignore stop).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from straxd.core.lifecycle import serve, wait_for_stop
from straxd.core.logging import configure_logging


def say(state: str) -> None:
    print(json.dumps({"state": state}), flush=True)


async def run(stop: asyncio.Event, mode: str) -> int:
    say("ready")
    await stop.wait()
    say("stopping")
    if mode == "hang":
        await wait_for_stop(asyncio.Event(), 3600)
    say("drained")
    return 0


if __name__ == "__main__":
    lock, mode = Path(sys.argv[1]), sys.argv[2]
    configure_logging("testsvc", "testhost", stream=sys.stderr)
    sys.exit(serve("testsvc", lock, lambda stop: run(stop, mode)))
