"""HTTP client candidates for the hub's vendor calls: CPU per call in the client process.

    uv run --frozen --with aiohttp --with pyreqwest --with rnet --with niquests \
        --with aiosonic --with curl-cffi --with httpx-aiohttp --with httpx2 \
        python bench/http_client/run.py --in-flight 32 \
        --json bench/http_client/results/in_flight_32.json
    uv run --frozen --with aiohttp ... python bench/http_client/run.py --quick

``uv run --with`` puts the candidates in a throwaway overlay: the project's lock is untouched. A
candidate that is not installed is skipped (and said so); httpx is always there.

What runs: a Tave (VSCO Workspace) sandbox in its own process (``bench/e2e/harness.py``
``SandboxProcess``), so the CPU of this process is the client's only. This process runs on uvloop,
as the hub does (``journeyhub.serve.run_process``), and sends what the Tave connector sends
(``journeyhub_tave.client``): a fixed cycle of 8 calls, POST ``/address-book``, ``/job``,
``/job-contact``, ``/note`` (JSON bodies of 240-390 bytes, answered 201 with the record, 460-640
bytes: the sandbox's records are smaller than the real API's), GET
``/job?externalMappingId=...&includeClosed=true&sortBy=modified desc&pageSize=100`` (three times,
answered 200 with ``{type, meta, items: [one job]}``, 600-650 bytes) and PUT ``/job/{id}`` (64
bytes, answered with the job, 550 bytes), with the
``X-API-KEY`` and ``accept: application/json`` headers, a per-request timeout, and every answer
read and decoded. Each client also bumps the hub's vendor request counter once per call (httpx as
today through its request event hook, the others with a bound child counter).

Clients (one after the other in this process, each on the same workload):

- ``httpx-today``: ``httpx.AsyncClient`` exactly as ``journeyhub.hub.Hub.start`` builds it
  (limits 200/50, the metrics event hook) called through ``TaveClient.request`` (the connector's
  code: ``json=``, ``timeout=15.0``, ``response.json()``). The baseline of every ratio.
- ``httpx-tuned``: a pool sized to the concurrency (keep-alive equal), ``trust_env=False``, an
  explicit ``AsyncHTTPTransport(http2=False, retries=0)``, no event hook, a prebuilt
  ``httpx.Timeout``.
- ``httpx-sharded``: httpx-tuned, but its transport is several ``AsyncHTTPTransport`` of 4
  connections each, a request going to the one with the fewest in flight (``ShardedTransport``):
  httpcore scans the connections and requests of one pool on every request and response, so
  small pools cut the scan; a drop-in for ``Hub.http``.
- ``httpx2-today``, ``httpx2-tuned``: the same two with httpx2 (pydantic's maintained fork of httpx,
  same API, its own httpcore2 whose pool assigns requests in one pass) imported in place of httpx.
- ``httpx+aiohttp``, ``httpx+pyreqwest``: httpx's API over another transport
  (``httpx_aiohttp.AiohttpTransport``, ``pyreqwest.compatibility.httpx.HttpxTransport``).
- ``aiohttp`` (``ClientSession`` + ``TCPConnector(limit, limit_per_host, ttl_dns_cache)``),
  ``pyreqwest``, ``rnet``, ``niquests`` (``AsyncSession``), ``aiosonic`` (with
  ``max_conn_requests=None``: aiosonic 1.3.3 never resets a connection's request count, so past
  the default 1000 requests it opens a new connection for every request), ``curl-cffi``
  (``AsyncSession``), ``primp`` (``AsyncClient``, only with ``--clients``).

JSON: ``--json-mode msgspec`` (default) encodes bodies with ``msgspec.json.encode`` and decodes
the raw answer bytes with ``msgspec.json.decode``; ``native`` uses each library's own
(``json=`` and ``.json()``); ``both`` runs each client twice. ``httpx-today`` is always native: it
is the connector's code as it is.

Figures: for each concurrency (calls in flight: 1, 8, 32, 64) and client, after a warm-up that
opens the connections, ``--calls`` calls are timed (fewer if ``--max-seconds`` runs out first:
the slowest clients under load): calls per second (wall) and client CPU microseconds per call
(``time.process_time()``: every thread of this process, so the Rust clients' runtime threads
count). Rounds are interleaved (A B C, B C A, C A B, ...), ``--reps`` of them, and
the table gives medians; the ratio to ``httpx-today`` is the median of the per-round ratios. The
sandbox is reset and re-seeded before each trial. Beside each trial: the sandbox's CPU per call,
the CPU the rest of the machine used (other people's work: noise) and the TCP connections the
client opened during the timed calls (keep-alive at work: 0).

A full run of every level takes about 10 minutes on a loaded 2-core machine; to keep each run
short, run one level at a time (``--in-flight 32``): every run has its own baseline.

``--probe`` (on by default, ``--no-probe`` to skip) also checks each client against small
loopback servers: a connect that hangs (a full accept queue), a request that is never answered,
a connection closed after the request was read, a refused connection, and a 429 with
``Retry-After``; it prints the exception each one raises.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import SandboxProcess, machine, machine_busy
from journeyhub import metrics
from journeyhub.hub import _count_vendor_request
from journeyhub_tave.client import TaveClient
from journeyhub_tave.sandbox import _seed_id

_TICK = os.sysconf("SC_CLK_TCK")
CONNECT_S, READ_S = 5.0, 15.0  # per-request timeouts of the benchmark calls
USER_AGENT = "journeyhub"


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def client_ports(server_port: int) -> set[int]:
    """Local ports of the loopback TCP sockets (any state, TIME_WAIT too) connected to
    ``server_port``: the set grows by one for every connection the client opens."""
    ports = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, remote = line.split()[1:3]
            if int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


# --- the workload -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # under api_base
    url: str
    params: dict[str, str] | None
    body: dict[str, Any] | None


def _mapping(kind: str, raw: str) -> dict[str, str]:
    return {"id": raw, "url": f"https://hub.journeyhub.example/tave/{kind}/{raw}"}


def build_ops(api_base: str, contacts: list[str], jobs: list[tuple[str, str]]) -> list[Op]:
    """A cycle of 8 calls per seed, like the connector's: 4 creates, 3 lookups, 1 update."""
    ops: list[Op] = []
    wedding = _seed_id("job-type", "Wedding")
    for n, (contact, (job, ext)) in enumerate(zip(contacts, jobs, strict=True)):
        tag = f"{n:04d}"
        steps: list[tuple[str, str, dict[str, str] | None, dict[str, Any] | None]] = [
            (
                "POST",
                "/address-book",
                None,
                {
                    "kind": "person",
                    "firstName": "Amelia",
                    "lastName": f"Hartley-{tag}",
                    "email": f"amelia.hartley.{tag}@example.com",
                    "cellPhone": {"formatted": "+1 415 555 0134"},
                    "externalMappings": [_mapping("client", f"cl_01J9ZK4T8V6R2M{tag}QX7PWD3N")],
                },
            ),
            (
                "POST",
                "/job",
                None,
                {
                    "name": f"Amelia & Jordan wedding {tag}",
                    "eventDate": "2027-06-19",
                    "jobTypeId": wedding,
                    "leadNotes": "Booked through the spring journey.",
                    "guestCount": 120,
                    "stage": "lead",
                    "externalMappings": [_mapping("journey", f"ji_01J9ZK5B2C7D4E{tag}FG8HJ9KM")],
                },
            ),
            (
                "POST",
                "/job-contact",
                None,
                {
                    "jobId": job,
                    "contactId": contact,
                    "client": True,
                    "externalMappings": [
                        _mapping("job-contact", f"jc_01J9ZK6N3P8Q5R{tag}ST0VW1XY")
                    ],
                },
            ),
            (
                "POST",
                "/note",
                None,
                {
                    "contentHtml": "<p>Wedding onboarding: <strong>Questionnaire sent</strong> "
                    f"completed</p><p><small>journeyhub ref step-{tag}-questionnaire</small></p>",
                    "jobId": job,
                    "contactId": contact,
                    "date": "2026-11-24",
                },
            ),
            (
                "GET",
                "/job",
                {
                    "externalMappingId": ext,
                    "includeClosed": "true",
                    "sortBy": "modified desc",
                    "pageSize": "100",
                },
                None,
            ),
            (
                "PUT",
                f"/job/{job}",
                None,
                {"name": f"Amelia & Jordan wedding {tag}", "eventDate": "2027-06-26"},
            ),
            (
                "GET",
                "/job",
                {
                    "externalMappingId": ext,
                    "includeClosed": "true",
                    "sortBy": "modified desc",
                    "pageSize": "100",
                },
                None,
            ),
            (
                "GET",
                "/job",
                {
                    "externalMappingId": ext,
                    "includeClosed": "true",
                    "sortBy": "modified desc",
                    "pageSize": "100",
                },
                None,
            ),
        ]
        for method, path, params, body in steps:
            ops.append(Op(method, path, api_base + path, params, body))
    return ops


def seed(api_base: str, key: str, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    """n contacts and n jobs (with an external mapping each) for links, notes, lookups, updates."""
    headers = {"X-API-KEY": key}
    contacts: list[str] = []
    jobs: list[tuple[str, str]] = []
    with httpx.Client(headers=headers, timeout=10.0) as http:
        for i in range(n):
            answer = http.post(
                api_base + "/address-book", json={"kind": "person", "lastName": f"Seed {i}"}
            )
            answer.raise_for_status()
            contacts.append(answer.json()["id"])
            ext = f"ji_seed_{i:04d}"
            answer = http.post(
                api_base + "/job",
                json={"name": f"Seed {i}", "externalMappings": [_mapping("journey", ext)]},
            )
            answer.raise_for_status()
            jobs.append((answer.json()["id"], ext))
    return contacts, jobs


# --- the clients ----------------------------------------------------------------------------------


class CallFailed(Exception):
    pass


@dataclass
class Limits:
    concurrency: int
    connect: float = CONNECT_S
    read: float = READ_S

    @property
    def total(self) -> float:
        return self.connect + self.read


class Client:
    """One candidate: ``open`` in the running loop, ``call`` per Op (decoded JSON), ``close``."""

    name = "?"
    package = "httpx"
    native_only = False

    def __init__(self, json_mode: str) -> None:
        self.json_mode = json_mode
        self.count = metrics.vendor_requests.labels("127.0.0.1")

    @property
    def label(self) -> str:
        return f"{self.name} [{self.json_mode}]"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        self.api_base, self.key, self.limits = api_base, key, limits
        self.headers = {"X-API-KEY": key, "accept": "application/json"}
        self.headers_json = {**self.headers, "content-type": "application/json"}

    async def call(self, op: Op) -> Any:
        raise NotImplementedError

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        """For the probe: (status, Retry-After) of a GET."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


def _check(status: int) -> None:
    if status >= 300:
        raise CallFailed(f"status {status}")


class HttpxToday(Client):
    name = "httpx-today"
    native_only = True
    lib: Any = httpx

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        await super().open(api_base, key, limits)
        lib = self.lib
        # journeyhub/hub.py, Hub.start
        self.http = lib.AsyncClient(
            timeout=lib.Timeout(10.0, connect=5.0),
            limits=lib.Limits(max_connections=200, max_keepalive_connections=50),
            headers={"user-agent": "journeyhub"},
            event_hooks={"request": [_count_vendor_request]},
        )
        self.tave = TaveClient(self.http, key, api_base, timeout=limits.read)

    async def call(self, op: Op) -> Any:
        return await self.tave.request(op.method, op.path, params=op.params, json=op.body)

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        timeout = self.lib.Timeout(self.limits.read, connect=self.limits.connect)
        answer = await self.http.get(url, timeout=timeout)
        return answer.status_code, answer.headers.get("retry-after")

    async def close(self) -> None:
        await self.http.aclose()


class HttpxTuned(Client):
    name = "httpx-tuned"
    lib: Any = httpx

    def transport(self, limits: Limits) -> httpx.AsyncBaseTransport:
        pool = self.lib.Limits(
            max_connections=limits.concurrency,
            max_keepalive_connections=limits.concurrency,
            keepalive_expiry=30.0,
        )
        return self.lib.AsyncHTTPTransport(
            limits=pool, http1=True, http2=False, retries=0, trust_env=False
        )

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        await super().open(api_base, key, limits)
        self.timeout = self.lib.Timeout(limits.read, connect=limits.connect)
        self.http = self.lib.AsyncClient(
            transport=self.transport(limits),
            timeout=self.timeout,
            headers={"user-agent": USER_AGENT},
            trust_env=False,
            follow_redirects=False,
        )

    async def call(self, op: Op) -> Any:
        self.count.inc()
        if self.json_mode == "native":
            answer = await self.http.request(
                op.method,
                op.url,
                params=op.params,
                json=op.body,
                headers=self.headers,
                timeout=self.timeout,
            )
            _check(answer.status_code)
            return answer.json()
        if op.body is None:
            answer = await self.http.request(
                op.method, op.url, params=op.params, headers=self.headers, timeout=self.timeout
            )
        else:
            answer = await self.http.request(
                op.method,
                op.url,
                content=msgspec.json.encode(op.body),
                headers=self.headers_json,
                timeout=self.timeout,
            )
        _check(answer.status_code)
        return msgspec.json.decode(answer.content)

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        answer = await self.http.get(url, timeout=self.timeout)
        return answer.status_code, answer.headers.get("retry-after")

    async def close(self) -> None:
        await self.http.aclose()


def _httpx2() -> Any:
    import httpx2

    return httpx2


class Httpx2Today(HttpxToday):
    """httpx2 (pydantic's maintained fork of httpx, the same API) in place of httpx, nothing else
    changed: the hub's client, the connector's calls."""

    name = "httpx2-today"
    package = "httpx2"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        self.lib = _httpx2()
        await super().open(api_base, key, limits)


class Httpx2Tuned(HttpxTuned):
    name = "httpx2-tuned"
    package = "httpx2"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        self.lib = _httpx2()
        await super().open(api_base, key, limits)


class ShardedTransport(httpx.AsyncBaseTransport):
    """httpx transports side by side, each with a small pool, a request going to the one with the
    fewest in flight: httpcore's per-request scans cover one shard's connections, not all."""

    def __init__(self, shards: list[httpx.AsyncHTTPTransport]) -> None:
        self.shards = shards
        self.load = [0] * len(shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = min(range(len(self.shards)), key=self.load.__getitem__)
        self.load[i] += 1
        try:
            return await self.shards[i].handle_async_request(request)
        finally:
            self.load[i] -= 1

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


class HttpxSharded(HttpxTuned):
    name = "httpx-sharded"
    SHARD = 4

    def transport(self, limits: Limits) -> httpx.AsyncBaseTransport:
        shards = -(-limits.concurrency // self.SHARD)
        size = min(self.SHARD, limits.concurrency)
        pool = httpx.Limits(
            max_connections=size, max_keepalive_connections=size, keepalive_expiry=30.0
        )
        return ShardedTransport(
            [
                httpx.AsyncHTTPTransport(limits=pool, http2=False, retries=0, trust_env=False)
                for _ in range(shards)
            ]
        )


class HttpxOverAiohttp(HttpxTuned):
    name = "httpx+aiohttp"
    package = "httpx-aiohttp"

    def transport(self, limits: Limits) -> httpx.AsyncBaseTransport:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        def session() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=limits.concurrency,
                limit_per_host=limits.concurrency,
                ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            return aiohttp.ClientSession(connector=connector)

        return AiohttpTransport(client=session)


class HttpxOverPyreqwest(HttpxTuned):
    name = "httpx+pyreqwest"
    package = "pyreqwest"

    def transport(self, limits: Limits) -> httpx.AsyncBaseTransport:
        from pyreqwest.client import ClientBuilder
        from pyreqwest.compatibility.httpx import HttpxTransport

        client = (
            ClientBuilder()
            .max_connections(limits.concurrency)
            .pool_max_idle_per_host(limits.concurrency)
            .connect_timeout(timedelta(seconds=limits.connect))
            .read_timeout(timedelta(seconds=limits.read))
            .follow_redirects(False)
            .build()
        )
        return HttpxTransport(client)


class Aiohttp(Client):
    name = "aiohttp"
    package = "aiohttp"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        import aiohttp

        await super().open(api_base, key, limits)
        self.aiohttp = aiohttp
        connector = aiohttp.TCPConnector(
            limit=limits.concurrency,
            limit_per_host=limits.concurrency,
            ttl_dns_cache=300,
            keepalive_timeout=30,
        )
        self.timeout = aiohttp.ClientTimeout(
            total=limits.total, sock_connect=limits.connect, sock_read=limits.read
        )
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, headers={"user-agent": USER_AGENT}
        )

    async def call(self, op: Op) -> Any:
        self.count.inc()
        if self.json_mode == "native":
            async with self.session.request(
                op.method,
                op.url,
                params=op.params,
                json=op.body,
                headers=self.headers,
                timeout=self.timeout,
            ) as answer:
                _check(answer.status)
                return await answer.json()
        data = None if op.body is None else msgspec.json.encode(op.body)
        async with self.session.request(
            op.method,
            op.url,
            params=op.params,
            data=data,
            headers=self.headers if data is None else self.headers_json,
            timeout=self.timeout,
        ) as answer:
            _check(answer.status)
            return msgspec.json.decode(await answer.read())

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        async with self.session.get(url, timeout=self.timeout) as answer:
            await answer.read()
            return answer.status, answer.headers.get("retry-after")

    async def close(self) -> None:
        await self.session.close()


class Pyreqwest(Client):
    name = "pyreqwest"
    package = "pyreqwest"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        from pyreqwest.client import ClientBuilder

        await super().open(api_base, key, limits)
        self.total = timedelta(seconds=limits.total)
        self.client = (
            ClientBuilder()
            .max_connections(limits.concurrency)
            .pool_max_idle_per_host(limits.concurrency)
            .connect_timeout(timedelta(seconds=limits.connect))
            .read_timeout(timedelta(seconds=limits.read))
            .follow_redirects(False)
            .user_agent(USER_AGENT)
            .build()
        )

    async def call(self, op: Op) -> Any:
        self.count.inc()
        builder = self.client.request(op.method, op.url).timeout(self.total)
        if op.params:
            builder = builder.query(op.params)
        if self.json_mode == "native":
            builder = builder.headers(self.headers)
            if op.body is not None:
                builder = builder.body_json(op.body)
            answer = await builder.build().send()
            _check(answer.status)
            return await answer.json()
        if op.body is None:
            builder = builder.headers(self.headers)
        else:
            builder = builder.headers(self.headers_json).body_bytes(msgspec.json.encode(op.body))
        answer = await builder.build().send()
        _check(answer.status)
        return msgspec.json.decode(await answer.bytes())

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        answer = await self.client.get(url).timeout(self.total).build().send()
        await answer.bytes()
        return answer.status, answer.get_header("retry-after")

    async def close(self) -> None:
        await self.client.close()


class Rnet(Client):
    name = "rnet"
    package = "rnet"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        import rnet

        await super().open(api_base, key, limits)
        self.methods = {m: getattr(rnet.Method, m) for m in ("GET", "POST", "PUT")}
        # rnet 2.x takes whole seconds
        self.total = max(1, round(limits.total))
        self.client = rnet.Client(
            user_agent=USER_AGENT,
            connect_timeout=max(1, round(limits.connect)),
            read_timeout=max(1, round(limits.read)),
            timeout=self.total,
            pool_max_idle_per_host=limits.concurrency,
            pool_max_size=limits.concurrency,
            no_proxy=True,
            http1_only=True,
            allow_redirects=False,
        )

    async def call(self, op: Op) -> Any:
        self.count.inc()
        kwargs: dict[str, Any] = {"timeout": self.total}
        if op.params:
            kwargs["query"] = list(op.params.items())
        if op.body is None:
            kwargs["headers"] = self.headers
        elif self.json_mode == "native":
            kwargs["headers"] = self.headers
            kwargs["json"] = op.body
        else:
            kwargs["headers"] = self.headers_json
            kwargs["body"] = msgspec.json.encode(op.body)
        answer = await self.client.request(self.methods[op.method], op.url, **kwargs)
        _check(answer.status)
        if self.json_mode == "native":
            return await answer.json()
        return msgspec.json.decode(await answer.bytes())

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        answer = await self.client.request(self.methods["GET"], url, timeout=self.total)
        await answer.bytes()
        value = answer.headers.get("retry-after")
        return answer.status, value.decode() if isinstance(value, bytes) else value


class Niquests(Client):
    name = "niquests"
    package = "niquests"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        import niquests

        await super().open(api_base, key, limits)
        self.session = niquests.AsyncSession(
            pool_connections=10,
            pool_maxsize=limits.concurrency,
            disable_http2=True,
            disable_http3=True,
            retries=0,
        )
        self.session.trust_env = False
        self.session.headers["user-agent"] = USER_AGENT
        self.timeout = (limits.connect, limits.read)

    async def call(self, op: Op) -> Any:
        self.count.inc()
        if self.json_mode == "native":
            answer = await self.session.request(
                op.method,
                op.url,
                params=op.params,
                json=op.body,
                headers=self.headers,
                timeout=self.timeout,
            )
            _check(answer.status_code)
            return answer.json()
        data = None if op.body is None else msgspec.json.encode(op.body)
        answer = await self.session.request(
            op.method,
            op.url,
            params=op.params,
            data=data,
            headers=self.headers if data is None else self.headers_json,
            timeout=self.timeout,
        )
        _check(answer.status_code)
        return msgspec.json.decode(answer.content)

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        answer = await self.session.get(url, timeout=self.timeout)
        return answer.status_code, answer.headers.get("retry-after")

    async def close(self) -> None:
        await self.session.close()


class Aiosonic(Client):
    name = "aiosonic"
    package = "aiosonic"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        import aiosonic
        from aiosonic.pools import PoolConfig

        await super().open(api_base, key, limits)
        self.timeouts = aiosonic.Timeouts(
            sock_connect=limits.connect, sock_read=limits.read, request_timeout=limits.total
        )
        connector = aiosonic.TCPConnector(
            # max_conn_requests=None: see the module docstring (a recycling bug in 1.3.3)
            pool_configs={":default": PoolConfig(size=limits.concurrency, max_conn_requests=None)},
            timeouts=self.timeouts,
        )
        self.client = aiosonic.HTTPClient(connector=connector)
        self.headers = {**self.headers, "user-agent": USER_AGENT}
        self.headers_json = {**self.headers_json, "user-agent": USER_AGENT}

    async def call(self, op: Op) -> Any:
        self.count.inc()
        if self.json_mode == "native":
            answer = await self.client.request(
                op.url,
                op.method,
                headers=self.headers,
                params=op.params,
                json=op.body,
                timeouts=self.timeouts,
            )
            _check(answer.status_code)
            return await answer.json()
        data = None if op.body is None else msgspec.json.encode(op.body)
        answer = await self.client.request(
            op.url,
            op.method,
            headers=self.headers if data is None else self.headers_json,
            params=op.params,
            data=data,
            timeouts=self.timeouts,
        )
        _check(answer.status_code)
        return msgspec.json.decode(await answer.content())

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        answer = await self.client.get(url, timeouts=self.timeouts)
        await answer.content()
        return answer.status_code, answer.headers.get("retry-after")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.connector.cleanup()


class CurlCffi(Client):
    name = "curl-cffi"
    package = "curl-cffi"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        from curl_cffi import AsyncSession

        await super().open(api_base, key, limits)
        self.timeout = (limits.connect, limits.read)
        self.session = AsyncSession(
            max_clients=limits.concurrency,
            timeout=self.timeout,
            trust_env=False,
            headers={"user-agent": USER_AGENT},
            allow_redirects=False,
        )

    async def call(self, op: Op) -> Any:
        self.count.inc()
        if self.json_mode == "native":
            answer = await self.session.request(
                op.method,
                op.url,
                params=op.params,
                json=op.body,
                headers=self.headers,
                timeout=self.timeout,
            )
            _check(answer.status_code)
            return answer.json()
        data = None if op.body is None else msgspec.json.encode(op.body)
        answer = await self.session.request(
            op.method,
            op.url,
            params=op.params,
            data=data,
            headers=self.headers if data is None else self.headers_json,
            timeout=self.timeout,
        )
        _check(answer.status_code)
        return msgspec.json.decode(answer.content)

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        answer = await self.session.get(url, timeout=self.timeout)
        return answer.status_code, answer.headers.get("retry-after")

    async def close(self) -> None:
        await self.session.close()


class Primp(Client):
    name = "primp"
    package = "primp"

    async def open(self, api_base: str, key: str, limits: Limits) -> None:
        import primp

        await super().open(api_base, key, limits)
        self.client = primp.AsyncClient(
            timeout=limits.total,
            connect_timeout=limits.connect,
            read_timeout=limits.read,
            follow_redirects=False,
        )

    async def call(self, op: Op) -> Any:
        self.count.inc()
        kwargs: dict[str, Any] = {"params": op.params} if op.params else {}
        if op.body is None:
            kwargs["headers"] = self.headers
        elif self.json_mode == "native":
            kwargs["headers"] = self.headers
            kwargs["json"] = op.body
        else:
            kwargs["headers"] = self.headers_json
            kwargs["content"] = msgspec.json.encode(op.body)
        answer = await self.client.request(op.method, op.url, **kwargs)
        _check(answer.status_code)
        if self.json_mode == "native":
            return answer.json()
        return msgspec.json.decode(answer.content)

    async def get_raw(self, url: str) -> tuple[int, str | None]:
        answer = await self.client.get(url)
        return answer.status_code, answer.headers.get("retry-after")


CLIENTS: dict[str, type[Client]] = {
    c.name: c
    for c in (
        HttpxToday,
        HttpxTuned,
        HttpxSharded,
        Httpx2Today,
        Httpx2Tuned,
        HttpxOverAiohttp,
        HttpxOverPyreqwest,
        Aiohttp,
        Pyreqwest,
        Rnet,
        Niquests,
        Aiosonic,
        CurlCffi,
        Primp,
    )
}
DEFAULT_CLIENTS = [name for name in CLIENTS if name != "primp"]


def installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- one trial ------------------------------------------------------------------------------------


async def drive(
    client: Client,
    ops: list[Op],
    start: int,
    calls: int,
    in_flight: int,
    deadline: float | None = None,
) -> tuple[int, int]:
    """Up to ``calls`` calls, ``in_flight`` at a time, none started after ``deadline``
    (``time.perf_counter()``); returns (calls made, POSTs among them)."""
    indexes = iter(range(start, start + calls))
    made = posts = 0

    async def worker() -> None:
        nonlocal made, posts
        for i in indexes:
            op = ops[i % len(ops)]
            answer = await client.call(op)
            if not isinstance(answer, dict) or not ("id" in answer or "items" in answer):
                raise CallFailed(f"{op.method} {op.path}: unexpected answer {str(answer)[:80]}")
            made += 1
            posts += op.method == "POST"
            if deadline is not None and time.perf_counter() > deadline:
                break

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return made, posts


@dataclass
class Trial:
    client: str
    in_flight: int
    round: int
    calls: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    sandbox_cpu_s: float = 0.0
    others_cpu_s: float = 0.0
    new_connections: int = 0
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.calls * 1e6 if self.calls else 0.0


async def trial(
    make: Callable[[], Client],
    sandbox: SandboxProcess,
    in_flight: int,
    calls: int,
    warmup: int,
    round_no: int,
    n_seeds: int,
    max_seconds: float,
) -> Trial:
    client = make()
    out = Trial(client.label, in_flight, round_no)
    api_base, key = sandbox.info["api_base"], sandbox.info["api_key"]
    sandbox.ask("reset")
    contacts, jobs = seed(api_base, key, n_seeds)
    ops = build_ops(api_base, contacts, jobs)
    try:
        await client.open(api_base, key, Limits(in_flight))
        await drive(
            client, ops, 0, max(warmup, 2 * in_flight), in_flight, time.perf_counter() + max_seconds
        )
        before_count = sandbox.ask("count")
        gc.collect()
        me = os.getpid()
        server_port = int(api_base.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        ports0 = client_ports(server_port)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sb0, all0, me0 = proc_cpu(sandbox.pid), machine_busy(), proc_cpu(me)
        made, posts = await drive(client, ops, warmup, calls, in_flight, wall0 + max_seconds)
        wall1, cpu1 = time.perf_counter(), time.process_time()
        sb1, all1, me1 = proc_cpu(sandbox.pid), machine_busy(), proc_cpu(me)
        out.calls, out.seconds, out.cpu_s = made, wall1 - wall0, cpu1 - cpu0
        out.sandbox_cpu_s = sb1 - sb0
        out.new_connections = len(client_ports(server_port) - ports0)
        out.others_cpu_s = max(0.0, (all1 - all0) - (sb1 - sb0) - (me1 - me0))
        created = sandbox.ask("count") - before_count
        if created != posts:
            out.error = f"the sandbox recorded {created} creates for {posts} POSTs"
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return out


# --- the probe: timeouts, failures, Retry-After ---------------------------------------------------


async def _silent_server(mode: str) -> tuple[asyncio.Server, int]:
    """'hang': read the request, never answer; 'drop': read it and close; '429': answer 429."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if mode == "drop":
                writer.close()
                return
            while mode == "429":  # keep-alive: answer every request on the connection
                writer.write(
                    b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\n"
                    b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                )
                await writer.drain()
                await reader.readuntil(b"\r\n\r\n")
            await reader.read()  # hang: until the client gives up
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _full_backlog() -> tuple[socket.socket, list[socket.socket], int]:
    """A listening socket whose accept queue is full: further connects hang (SYNs dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        held.append(s)
    time.sleep(0.05)
    return listener, held, port


def _describe(exc: BaseException) -> str:
    chain = [type(exc)]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and type(cause) is not type(exc):
        chain.append(type(cause))
    names = " <- ".join(f"{t.__module__.split('.')[0]}.{t.__qualname__}" for t in chain)
    return names + (f" ({str(exc)[:70]!r})" if str(exc) else "")


async def probe(make: Callable[[], Client]) -> dict[str, str]:
    """What each failure looks like to the caller, with connect 0.5 s / read 1 s timeouts."""
    out: dict[str, str] = {}
    client = make()
    limits = Limits(4, connect=1.0, read=1.0) if client.name == "rnet" else Limits(4, 0.5, 1.0)
    await client.open("http://127.0.0.1:9", "k", limits)
    listener, held, hang_port = _full_backlog()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    servers = {mode: await _silent_server(mode) for mode in ("hang", "drop", "429")}
    cases = {
        "connect hangs": f"http://127.0.0.1:{hang_port}/",
        "refused": f"http://127.0.0.1:{refused_port}/",
        "answer never comes": f"http://127.0.0.1:{servers['hang'][1]}/",
        "closed after request": f"http://127.0.0.1:{servers['drop'][1]}/",
        "429": f"http://127.0.0.1:{servers['429'][1]}/",
    }
    try:
        for case, url in cases.items():
            t0 = time.perf_counter()
            try:
                status, retry_after = await asyncio.wait_for(client.get_raw(url), 10)
                out[case] = f"status {status}, Retry-After {retry_after!r}"
            except BaseException as exc:
                out[case] = _describe(exc)
            out[case] += f" after {time.perf_counter() - t0:.2f}s"
    finally:
        with contextlib.suppress(Exception):
            await client.close()
        for server, _ in servers.values():
            server.close()
        for s in held:
            s.close()
        listener.close()
    return out


# --- the report -----------------------------------------------------------------------------------


def summarize(trials: list[Trial], baseline: str) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(t.in_flight, t.client) for t in trials}, key=lambda k: k[0])
    order = list(dict.fromkeys(t.client for t in trials))
    for in_flight, name in sorted(keys, key=lambda k: (k[0], order.index(k[1]))):
        mine = [t for t in trials if t.client == name and t.in_flight == in_flight]
        good = [t for t in mine if t.error is None]
        row: dict[str, Any] = {
            "client": name,
            "in_flight": in_flight,
            "rounds": len(good),
            "errors": [t.error for t in mine if t.error],
        }
        if good:
            cpu = [t.cpu_us for t in good]
            rate = [t.rate for t in good]
            row |= {
                "cpu_us": statistics.median(cpu),
                "cpu_us_min": min(cpu),
                "cpu_us_max": max(cpu),
                "calls_per_s": statistics.median(rate),
                "sandbox_cpu_us": statistics.median(t.sandbox_cpu_s / t.calls * 1e6 for t in good),
                "new_connections": statistics.median(t.new_connections for t in good),
                "timed_calls_min": min(t.calls for t in good),
                "others_cpu_pct": statistics.median(t.others_cpu_s / t.seconds * 100 for t in good),
            }
            cpu_ratio, rate_ratio = [], []
            for t in good:
                base = next(
                    (
                        b
                        for b in trials
                        if b.client == baseline
                        and b.in_flight == in_flight
                        and b.round == t.round
                        and b.error is None
                    ),
                    None,
                )
                if base is not None:
                    cpu_ratio.append(t.cpu_us / base.cpu_us)
                    rate_ratio.append(t.rate / base.rate)
            if cpu_ratio:
                row["cpu_ratio"] = statistics.median(cpu_ratio)
                row["rate_ratio"] = statistics.median(rate_ratio)
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'in flight':>9}  {'client':<28} {'CPU µs/call':>11} {'(min-max)':>13} "
        f"{'x today':>7} {'calls/s':>8} {'x today':>7} {'sandbox µs':>10} {'others %':>8} "
        f"{'new conns':>9} {'calls':>6}"
    )
    print(head)
    print("-" * len(head))
    last = None
    for row in rows:
        if last is not None and row["in_flight"] != last:
            print()
        last = row["in_flight"]
        if "cpu_us" not in row:
            print(f"{row['in_flight']:>9}  {row['client']:<28} failed: {row['errors'][:1]}")
            continue
        spread = f"{row['cpu_us_min']:.0f}-{row['cpu_us_max']:.0f}"
        print(
            f"{row['in_flight']:>9}  {row['client']:<28} {row['cpu_us']:>11.0f} {spread:>13} "
            f"{row.get('cpu_ratio', float('nan')):>7.2f} {row['calls_per_s']:>8.0f} "
            f"{row.get('rate_ratio', float('nan')):>7.2f} {row['sandbox_cpu_us']:>10.0f} "
            f"{row['others_cpu_pct']:>8.0f} {row['new_connections']:>9.0f} "
            f"{row['timed_calls_min']:>6}"
            + (f"  ({len(row['errors'])} failed)" if row["errors"] else "")
        )


# --- main -----------------------------------------------------------------------------------------


@dataclass
class Plan:
    clients: list[tuple[str, Callable[[], Client]]] = field(default_factory=list)


def make_plan(names: list[str], json_mode: str) -> tuple[Plan, list[str]]:
    plan, skipped = Plan(), []
    modes = ["msgspec", "native"] if json_mode == "both" else [json_mode]
    for name in names:
        cls = CLIENTS[name]
        if installed(cls.package) is None:
            skipped.append(f"{name} ({cls.package} not installed)")
            continue
        for mode in ["native"] if cls.native_only else modes:
            plan.clients.append((f"{name} [{mode}]", lambda cls=cls, mode=mode: cls(mode)))
    return plan, skipped


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    names = args.clients.split(",") if args.clients else DEFAULT_CLIENTS
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise SystemExit(f"unknown clients {unknown}; known: {', '.join(CLIENTS)}")
    if "httpx-today" not in names:
        names.insert(0, "httpx-today")
    plan, skipped = make_plan(names, args.json_mode)
    levels = [int(x) for x in args.in_flight.split(",")]
    versions = {
        p: installed(p)
        for p in (
            "httpx",
            "httpcore",
            "httpcore2",
            "h11",
            "anyio",
            "msgspec",
            "uvloop",
            *dict.fromkeys(CLIENTS[n].package for n in names),
            "aiohttp",
        )
    }
    loop = type(asyncio.get_running_loop())
    print(f"machine: {machine()}  loop: {loop.__module__}.{loop.__qualname__}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    if skipped:
        print("skipped: " + "; ".join(skipped))
    print(f"load average at start: {os.getloadavg()}")
    print(
        f"plan: {len(plan.clients)} clients x in flight {levels} x {args.reps} rounds, "
        f"{args.calls} timed calls (or {args.max_seconds:g} s) "
        f"after {args.warmup} warm-up calls each"
    )
    report: dict[str, Any] = {
        "machine": machine(),
        "versions": versions,
        "skipped": skipped,
        "loadavg_start": os.getloadavg(),
        "args": vars(args),
    }
    if args.probe:
        report["probe"] = {}
        print("\nprobe (connect timeout 0.5 s, read 1 s; rnet 1 s / 1 s):")
        for label, make in plan.clients:
            if label.endswith("[native]") and any(
                lbl == label.replace("[native]", "[msgspec]") for lbl, _ in plan.clients
            ):
                continue
            result = await probe(make)
            report["probe"][label] = result
            print(f"  {label}")
            for case, text in result.items():
                print(f"    {case:<22} {text}")
    sandbox = SandboxProcess("tave")
    trials: list[Trial] = []
    started = time.perf_counter()
    try:
        for in_flight in levels:
            for round_no in range(args.reps):
                shift = round_no % len(plan.clients)
                for label, make in plan.clients[shift:] + plan.clients[:shift]:
                    t = await trial(
                        make,
                        sandbox,
                        in_flight,
                        args.calls,
                        args.warmup,
                        round_no,
                        args.seeds,
                        args.max_seconds,
                    )
                    trials.append(t)
                    note = f"  ERROR {t.error}" if t.error else ""
                    print(
                        f"  [{time.perf_counter() - started:6.1f}s] in flight {in_flight:>3} "
                        f"round {round_no} {label:<28} {t.cpu_us:7.0f} µs/call "
                        f"{t.rate:7.0f}/s  "
                        f"others {t.others_cpu_s / max(t.seconds, 1e-9) * 100:4.0f}% "
                        f"new conns {t.new_connections}"
                        f"{note}",
                        flush=True,
                    )
    finally:
        sandbox.stop()
    report["loadavg_end"] = os.getloadavg()
    baseline = next(label for label, _ in plan.clients if label.startswith("httpx-today"))
    rows = summarize(trials, baseline)
    report["rows"] = rows
    report["trials"] = [t.__dict__ | {"cpu_us": t.cpu_us, "rate": t.rate} for t in trials]
    print(
        f"\nmedians of {args.reps} interleaved rounds; 'x today' = median of per-round ratios "
        f"to {baseline}; 'others %' = CPU of every other process on the machine during the "
        f"timed calls (of {os.cpu_count() * 100}%)"
    )
    print_table(rows)
    print(f"load average at end: {os.getloadavg()}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clients", help=f"comma-separated, from {', '.join(CLIENTS)}")
    parser.add_argument("--in-flight", default="1,8,32,64", help="concurrency levels")
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per trial")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=8.0,
        help="end a timed run (and a warm-up) early after this long",
    )
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls before")
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seeds", type=int, default=64, help="contacts and jobs made per trial")
    parser.add_argument("--json-mode", choices=("msgspec", "native", "both"), default="msgspec")
    parser.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, few calls")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.warmup, args.reps, args.seeds, args.max_seconds = 200, 50, 1, 8, 3.0
        args.in_flight = "1,32" if args.in_flight == "1,8,32,64" else args.in_flight
    import uvloop

    report = uvloop.run(amain(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
