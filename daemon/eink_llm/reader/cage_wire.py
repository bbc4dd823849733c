"""The reading cage's wire format: what goes over the pipes between the daemon and a reading process.

A message is a 4-byte little-endian length, a JSON header of that length, then the binary blobs whose lengths
the header lists under ``"blobs"``. JSON and raw bytes only, never pickle: the reading process handles hostile
files, so the daemon must be able to treat whatever comes back as data, checked against the limits, never as
code or objects to rebuild. The receiver of a result (:mod:`~eink_llm.reader.cage`) bounds the header and the
blobs before reading them; this module only frames.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any, BinaryIO

LENGTH = struct.Struct("<I")
#: No header of ours comes near this; a longer one is a broken or hostile reading process.
MAX_HEADER_BYTES = 1024 * 1024


class WireError(Exception):
    """The other side sent something that is not a message of ours (or the pipe ended mid-message)."""


def frame(
    header: dict[str, Any], blobs: Sequence[bytes | bytearray | memoryview] = ()
) -> list[bytes | bytearray | memoryview]:
    """The pieces of one message, to be written in order."""
    encoded = json.dumps({**header, "blobs": [len(blob) for blob in blobs]}, separators=(",", ":")).encode()
    return [LENGTH.pack(len(encoded)), encoded, *blobs]


def parse_header(raw: bytes | bytearray) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"unreadable header: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("the header is not an object")
    blobs = header.get("blobs")
    if not isinstance(blobs, list) or not all(isinstance(n, int) and n >= 0 for n in blobs):
        raise WireError("the header lists no valid blob lengths")
    return header


def read_message(stream: BinaryIO) -> tuple[dict[str, Any], list[bytes]] | None:
    """One message from a blocking stream (the reading process's side); ``None`` at a clean end of input."""
    head = stream.read(LENGTH.size)
    if not head:
        return None
    if len(head) < LENGTH.size:
        raise WireError("the pipe ended inside a message")
    (size,) = LENGTH.unpack(head)
    if size > MAX_HEADER_BYTES:
        raise WireError(f"a header of {size} bytes")
    header = parse_header(_exactly(stream, size))
    return header, [_exactly(stream, length) for length in header["blobs"]]


def write_message(
    stream: BinaryIO, header: dict[str, Any], blobs: Sequence[bytes | bytearray | memoryview] = ()
) -> None:
    for piece in frame(header, blobs):
        stream.write(piece)
    stream.flush()


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise WireError("the pipe ended inside a message")
    return data
