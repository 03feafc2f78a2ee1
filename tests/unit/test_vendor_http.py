"""The HTTP client connectors call vendors with, against real sockets on loopback: what a failed
call is (never sent, or sent with no answer: the retry must look up first), what an answer
means, and that no URL secret reaches an error message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import pytest_asyncio
from journeyhub.bus.embedded import free_port
from journeyhub.errors import (
    AuthExpired,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    RetryableError,
    VendorUnreachable,
)
from journeyhub.vendor_http import VendorHttp, retry_after
from journeyhub.workers.push import outcome_unknown

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp(timeout=0.5, connect_timeout=0.5) as client:
        yield client


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    headers = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n").encode() + body


async def test_no_connection_is_unreachable_and_a_retry_is_safe(http: VendorHttp) -> None:
    with pytest.raises(VendorUnreachable) as failed:
        await http.post(f"http://127.0.0.1:{free_port()}/contacts", json={"a": 1})
    assert not outcome_unknown(failed.value)
    assert isinstance(failed.value, RetryableError)


async def test_a_request_sent_and_never_answered_has_an_unknown_outcome(http: VendorHttp) -> None:
    received: list[bytes] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append((await read_request(reader))[2])  # the vendor has the request ...
        await asyncio.sleep(5)  # ... and answers too late
        writer.close()

    server, url = await serve(hang)
    async with server:
        with pytest.raises(OutcomeUnknown, match="timed out") as failed:
            await http.post(f"{url}/contacts", json={"name": "Ada"})
    assert outcome_unknown(failed.value) and received == [b'{"name":"Ada"}']


async def test_a_connection_closed_after_the_request_has_an_unknown_outcome(
    http: VendorHttp,
) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    server, url = await serve(drop)
    async with server:
        with pytest.raises(OutcomeUnknown):
            await http.put(f"{url}/job/1", json={"eventDate": "2026-10-03"})


async def test_answers_are_classified_and_retry_after_is_read(http: VendorHttp) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    answers = iter(
        [
            answer(429, b"{}", {"Retry-After": "7"}),
            answer(503, b"", {"retry-after": later}),
            answer(401),
            answer(422, b'{"detail": "bad"}'),
            answer(201, b'{"id": "c-1"}'),
        ]
    )
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def vendor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # one keep-alive connection serves all
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(next(answers))
            await writer.drain()

    server, url = await serve(vendor)
    async with server:
        answered = [await http.post(f"{url}/x", json={"n": n}) for n in range(4)]
        created = await http.get(f"{url}/x", params={"page": 2, "closed": True, "none": None})
    errors = [response.error("acme") for response in answered]
    assert isinstance(errors[0], RateLimited) and errors[0].retry_after == 7
    assert isinstance(errors[1], RetryableError) and 25 < (answered[1].retry_after() or 0) <= 30
    assert isinstance(errors[2], AuthExpired) and isinstance(errors[3], PermanentError)
    assert created.is_success and created.json() == {"id": "c-1"}
    assert seen[0][1]["content-type"] == "application/json" and json.loads(seen[0][2]) == {"n": 0}
    assert seen[-1][0] == "GET /x?page=2&closed=true HTTP/1.1"


def test_retry_after_reads_seconds_and_dates_and_ignores_junk() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert retry_after("12", now.timestamp()) == 12
    assert (
        retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now.timestamp())
        == 90
    )
    assert (
        retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now.timestamp()) == 0
    )
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("") is None


async def test_a_secret_in_the_url_never_reaches_the_message(http: VendorHttp) -> None:
    secret = "tok_live_0123456789abcdef"
    with pytest.raises(VendorUnreachable) as failed:
        await http.post(f"http://127.0.0.1:{free_port()}/hooks/catch/1/{secret}/?token={secret}")
    assert secret not in str(failed.value) and "127.0.0.1" in str(failed.value)


async def test_a_call_that_never_got_a_pooled_connection_was_never_sent() -> None:
    """With every pooled connection busy past the connect timeout, the call was not sent:
    VendorUnreachable, so the retry needs no lookup."""
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.write(answer(200, b"{}"))
        await writer.drain()
        writer.close()

    server, url = await serve(slow)
    async with server, VendorHttp(timeout=5, connect_timeout=0.3, limit=1) as http:
        busy = asyncio.create_task(http.get(f"{url}/a"))
        await asyncio.sleep(0.1)
        with pytest.raises(VendorUnreachable):
            await http.get(f"{url}/b")
        release.set()
        assert (await busy).status_code == 200
