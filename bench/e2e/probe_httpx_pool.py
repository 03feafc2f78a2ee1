"""Probe: CPU per vendor call through an httpx client like the hub's (limits 200/50), by how
many calls are in flight (so how many pooled connections httpcore scans per request).

    cd /work/main && uv run --frozen python bench/e2e/probe_httpx_pool.py

Calls ``GET /api/v2/studio/me`` on a Tave sandbox in its own process; reports this process's
CPU per request and the request rate, for 1 to 128 in flight.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SandboxProcess, machine

HUB_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)  # journeyhub/hub.py


async def trial(url: str, key: str, in_flight: int, total: int, limits: httpx.Limits
                ) -> tuple[float, float]:  # fmt: skip
    async with httpx.AsyncClient(limits=limits, headers={"x-api-key": key}) as http:
        gate = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with gate:
                answer = await http.get(url + "/api/v2/studio/me")
                assert answer.status_code == 200

        await asyncio.gather(*(one() for _ in range(in_flight * 2)))  # open the connections
        t0, w0 = os.times(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        t1, w1 = os.times(), time.perf_counter()
        cpu = (t1.user + t1.system) - (t0.user + t0.system)
        return cpu / total * 1000, total / (w1 - w0)


async def main() -> None:
    print(f"machine: {machine()}")
    sandbox = SandboxProcess("tave")
    try:
        for in_flight in (1, 8, 32, 64, 128):
            ms, rate = await trial(sandbox.info["url"], sandbox.info["api_key"], in_flight,
                                   3000, HUB_LIMITS)  # fmt: skip
            print(f"in flight {in_flight:4}: client CPU {ms:5.2f} ms/request, {rate:5.0f} req/s")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    asyncio.run(main())
