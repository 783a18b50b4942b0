"""A claimer process for the multi-process lease test.

argv: uri runs_db host n_tasks. Each asyncio task claims until nothing is left, then the
process prints the claimed run numbers as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import sys

from straxd.core.db import connect
from straxd.core.leases import claim


async def main(uri: str, runs_db: str, host: str, n_tasks: int) -> list[int]:
    client = connect(uri)
    runs = client[runs_db]["runs"]
    claimed: list[int] = []

    async def worker() -> None:
        while (got := await claim(runs, {"bootstrax.state": None}, host, lease_s=600)) is not None:
            claimed.append(got[1].number)

    async with asyncio.TaskGroup() as group:
        for _ in range(n_tasks):
            group.create_task(worker())
    await client.close()
    return claimed


if __name__ == "__main__":
    uri, runs_db, host, n_tasks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    print(json.dumps(asyncio.run(main(uri, runs_db, host, n_tasks))))
