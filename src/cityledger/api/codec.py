"""Reading request bodies fast: bounded reads, msgspec decoding, base64-or-hex transactions."""

from __future__ import annotations

import binascii
import re
from typing import TypeVar

import msgspec
from fastapi import Request
from starlette.responses import Response

from .errors import ApiError, invalid_body

T = TypeVar("T")

MAX_TX_BODY_BYTES = 1024 * 1024  # one tx of at most 256 KiB, hex-encoded, fits with room to spare
MAX_BATCH_BODY_BYTES = 64 * 1024 * 1024
_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`$")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "api/body_too_large", f"body: {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "api/body_too_large", f"body: more than {limit} bytes exceeds the limit")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(data: bytes, decoder: msgspec.json.Decoder) -> T:
    """Decode a JSON body; a failure becomes api/invalid_body naming the field."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise invalid_body(describe_validation(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise invalid_body(f"body: not valid JSON ({exc})") from None


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
