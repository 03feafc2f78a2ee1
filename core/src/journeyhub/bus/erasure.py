"""Finding and deleting one client's messages in the JetStream streams.

Messages are read one by one with the stream's message API (``STREAM.MSG.GET``, the next
message on a subject from a sequence on), not through a consumer: the work-queue streams
(inbound, events, push) allow no second consumer beside their workers', and a read this way
takes nothing from the workers. A message of the client is deleted by its sequence
(``STREAM.MSG.DELETE``). Not asked for ``no_erase``, the server erases it (nats-server's
``jetstream_api.go`` calls ``eraseMsg``, which overwrites the message in the stream's files),
so it cannot be read back from them either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nats.js.errors import APIError, NotFoundError

from journeyhub.bus.jetstream import Bus

# JetStream's error code for a sequence that holds no message (JSNoMessageFoundErr).
NO_MESSAGE_FOUND = 10057


async def scan(
    bus: Bus,
    stream_kind: str,
    subjects: Sequence[str],
    match: Callable[[bytes, dict[str, str]], bool],
    *,
    remove: bool,
) -> int:
    """Read every message on ``subjects`` of the stream; count those ``match`` (payload,
    headers) accepts, and delete them when ``remove``."""
    stream = bus.subjects.stream(stream_kind)
    found = 0
    for subject in subjects:
        sequence = 1
        while True:
            try:
                msg = await bus.js.get_msg(stream, seq=sequence, subject=subject, next=True)
            except NotFoundError:  # no message on the subject from this sequence on
                break
            assert msg.seq is not None
            sequence = msg.seq + 1
            if match(msg.data or b"", dict(msg.headers or {})):
                found += 1
                if remove:
                    try:
                        await bus.js.delete_msg(stream, msg.seq)
                    except APIError as exc:
                        # Acknowledged meanwhile (a work queue) or aged out: gone already.
                        if exc.err_code != NO_MESSAGE_FOUND:
                            raise
                        found -= 1
    return found
