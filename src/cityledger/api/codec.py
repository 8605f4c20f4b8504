"""Reading request bodies fast: bounded reads, msgspec decoding, base64-or-hex transactions."""

from __future__ import annotations

import asyncio
import binascii
import re
from itertools import accumulate
from typing import TypeVar

import msgspec
from fastapi import Request
from starlette.responses import Response

from .errors import ApiError, invalid_body

T = TypeVar("T")

MAX_TX_BODY_BYTES = 1024 * 1024  # one tx of at most 256 KiB, hex-encoded, fits with room to spare
MAX_BATCH_BODY_BYTES = 64 * 1024 * 1024
# The deepest JSON body the API parses. A presentation or credential request nests about 6 deep; a
# recursive decoder (and json.dumps later) fails near 1,000, so depth is checked on the raw bytes first.
MAX_JSON_DEPTH = 32
# Request bodies held at once, over all connections: a body that would pass it is refused with 503,
# so 1,024 connections cannot each hold a 64 MiB batch (memory then bounded by this, decoded copies
# included about three times over).
MAX_BODY_BYTES_IN_FLIGHT = 128 * 1024 * 1024
# The scope key under which a request's share of MAX_BODY_BYTES_IN_FLIGHT is kept until it ends.
BODY_BYTES_KEY = "cityledger.body_bytes"
# The longest a client may take to send a body once its headers are in: a 64 MiB batch at ~2 MB/s.
BODY_READ_TIMEOUT_S = 30.0
# Bodies are JSON; a charset, if named, must be UTF-8 (RFC 8259 section 8.1).
_JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
# A JSON string, matched possessively so a long string costs one pass of C code.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`$")


class _BodyBytes:
    """The body bytes all requests of this process hold; the event loop is the only writer."""

    held = 0


def release_body_bytes(scope: dict) -> None:
    """Give back a finished request's share of MAX_BODY_BYTES_IN_FLIGHT (middleware.BodyBudget calls this)."""
    _BodyBytes.held -= scope.pop(BODY_BYTES_KEY, 0)


def _hold(request: Request, size: int) -> None:
    if _BodyBytes.held + size > MAX_BODY_BYTES_IN_FLIGHT:
        raise ApiError(503, "api/busy", f"body: the node is reading {MAX_BODY_BYTES_IN_FLIGHT} bytes of "
                                        "other requests' bodies; retry shortly")
    _BodyBytes.held += size
    request.scope[BODY_BYTES_KEY] = request.scope.get(BODY_BYTES_KEY, 0) + size


async def read_body(request: Request, limit: int) -> bytes:
    """The JSON request body, refusing another media type, more than `limit` bytes, or a slow sender."""
    check_media_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "api/body_too_large", f"body: {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "api/body_too_large", f"body: more than {limit} bytes exceeds the limit")
                _hold(request, len(chunk))
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "api/request_timeout",
                       f"body: not received within {BODY_READ_TIMEOUT_S:g} s ({size} bytes read)") from None
    return b"".join(chunks)


def check_media_type(content_type: str | None) -> None:
    """Raise 415 api/unsupported_media_type unless the body is declared JSON (or not declared at all)."""
    if content_type is None:
        return
    media, *parameters = (part.strip().lower() for part in content_type.split(";"))
    charset = next((p.partition("=")[2].strip('"') for p in parameters if p.startswith("charset=")), "utf-8")
    if not _JSON_MEDIA.match(media) or charset not in ("utf-8", "utf8"):
        raise ApiError(415, "api/unsupported_media_type",
                       f"content-type: expected application/json (UTF-8), got {content_type[:100]!r}",
                       field="content-type")


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (an upper bound when within MAX_JSON_DEPTH), unparsed."""
    openings = data.count(b"[") + data.count(b"{")
    if openings <= MAX_JSON_DEPTH:  # the common case (a batch of base64 txs has two): no scan needed
        return openings
    structural = _JSON_STRING.sub(b"", data).translate(_BRACKETS, _NOT_BRACKETS)
    # Opening brackets are +1 and closing ones -1 (0xff read as a signed byte); all loops run in C.
    return max(accumulate(memoryview(structural).cast("b")), default=0)


def decode_json(data: bytes, decoder: msgspec.json.Decoder) -> T:
    """Decode a JSON body; a failure becomes api/invalid_body naming the field."""
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise invalid_body(f"body: nests {depth} levels deep, more than the limit of {MAX_JSON_DEPTH}")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise invalid_body(describe_validation(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise invalid_body(f"body: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise invalid_body(f"body: a string is not valid UTF-8 ({exc.reason} at byte {exc.start} of "
                           "the string)") from None
    except RecursionError:  # unreachable below MAX_JSON_DEPTH; kept so no depth ever becomes a 500
        raise invalid_body(f"body: nests more than the limit of {MAX_JSON_DEPTH} levels") from None


def describe_validation(text: str) -> str:
    """Turn msgspec's 'Expected `str`, got `int` - at `$.txs[0]`' into 'txs[0]: expected `str`, got `int`'."""
    match = _MSGSPEC_PATH.search(text)
    path, text = (match.group(1), text[: match.start()]) if match else ("body", text)
    for pattern, what in ((_MISSING, "missing required field"), (_UNKNOWN, "unknown field")):
        found = pattern.match(text)
        if found:
            name = f"{path}.{found.group(1)}" if path != "body" else found.group(1)
            return f"{name}: {what}"
    return f"{path}: {text[:1].lower()}{text[1:]}"


def decode_tx_text(text: str, encoding: str = "auto") -> bytes:
    """Bytes of a tx given as hex (optionally 0x-prefixed) or standard base64; raise ValueError."""
    if encoding in ("auto", "hex"):
        body = text[2:] if text.startswith(("0x", "0X")) else text
        try:
            return bytes.fromhex(body)
        except ValueError:
            if encoding == "hex":
                raise ValueError("expected hex digits") from None
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise ValueError("expected base64 or hex" if encoding == "auto" else "expected base64") from None


def json_response(value, status: int = 200) -> Response:
    """A response whose body msgspec encodes (Structs, lists, dicts)."""
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")
