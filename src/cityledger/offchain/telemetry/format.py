"""The device-side telemetry format: windows of integer samples, sealed for the owner, signed by the device.

A device sends one message per window (WINDOW_S seconds of 1 Hz samples). Every field is an integer
in a schema's unit (speed in cm/s, latitude and longitude in 1e-7 degrees): floats never reach the
wire. The plaintext of a window has a fixed width (every value an 8-byte integer, padded to the
window's capacity), so the ciphertext's length says nothing about the values or how many there were.

    TelemetryMessage = header (in clear: who, which sequence number, which data set, which window)
                     + ciphertext (AES-256-GCM under a fresh data key, the header as associated data)
                     + the data key wrapped (HPKE) for the owner, and for each consenting consumer
                     + the device's signature over all of it
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from ...core.encoding import Record, encode
from ...core.hashing import sha256

VERSION = 1
WINDOW_S = 10  # default window: one message per 10 s of 1 Hz samples
MAX_WINDOW_S = 60
MAX_CONSUMER_WRAPS = 16  # consumers a record's data key is wrapped for, besides the owner
MAX_MESSAGE_BYTES = 16 * 1024
MAX_ID_LEN = 128  # a device DID, a data set id, an owner id
MAX_SEQ = 2**64 - 1
MAX_TIME_S = 2**63 - 1
X25519_KEY_LEN = 32
WRAP_CT_LEN = 32 + 16  # a wrapped 32-byte data key and its GCM tag
GCM_TAG_LEN = 16
SIGNATURE_LEN = 64
NONCE_PREFIX = b"CLT1"  # 4 bytes; the other 8 of the 12-byte GCM nonce are the sequence number

DOMAIN_SIGN = b"cityledger/telemetry/sign/1\x00"
DOMAIN_RECORD = b"cityledger/telemetry/record/1\x00"
DOMAIN_WRAPS = b"cityledger/telemetry/wraps/1\x00"

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,%d}" % MAX_ID_LEN)
_SAMPLE_WORD = struct.Struct(">q")
_COUNT = struct.Struct(">H")


@dataclass(frozen=True)
class Schema:
    """What a sample holds: named integer fields, each within [low, high]."""

    name: str
    fields: tuple[str, ...]
    bounds: tuple[tuple[int, int], ...]


SCHEMAS = {
    schema.name: schema
    for schema in (
        Schema("vehicle/1", ("lat_e7", "lon_e7", "speed_cm_s"),
               ((-900_000_000, 900_000_000), (-1_800_000_000, 1_800_000_000), (0, 20_000))),
        Schema("meter/1", ("energy_wh", "power_w"), ((0, 2**40), (-(2**31), 2**31))),
        Schema("charger/1", ("energy_wh", "power_w", "soc_permille"), ((0, 2**40), (0, 2**31), (0, 1000))),
    )
}


@dataclass(frozen=True)
class Sample:
    """One reading: its time (unix seconds) and its schema's values, all integers."""

    t_s: int
    values: tuple[int, ...]


# The message types are not tracked by the cyclic garbage collector (gc=False): they never hold a
# reference back to themselves, and the gateway keeps tens of thousands of them in flight, which
# every full collection would otherwise walk (~9 us of a gateway's CPU a message, session 8).
class RecordHeader(Record, gc=False):
    """What travels in clear, bound to the ciphertext as associated data."""

    version: int
    device: str  # the device's DID
    seq: int  # per device, strictly increasing; also the GCM nonce
    dataset: str
    schema: str
    window_start_s: int
    window_s: int


class WrappedKey(Record, gc=False):
    """A record's data key sealed (HPKE base mode) to one recipient's X25519 public key."""

    recipient: bytes  # the recipient's X25519 public key
    enc: bytes  # the HPKE encapsulated key
    ct: bytes  # the sealed data key


class TelemetryMessage(Record, gc=False):
    """What a device publishes."""

    header: RecordHeader
    ciphertext: bytes
    owner_wrap: WrappedKey
    consumer_wraps: list[WrappedKey]  # sorted by recipient, distinct
    signature: bytes


class StoredRecord(Record, gc=False):
    """What a vault keeps of a message: everything but the wrapped keys, which it keeps apart so
    that erasure can destroy them; the digest of the wraps keeps the device's signature checkable."""

    header: RecordHeader
    ciphertext: bytes
    wraps_digest: bytes
    signature: bytes


class TelemetryError(ValueError):
    """A message or a window refused: `code` says why, `field` names what."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field


def is_valid_id(text: str) -> bool:
    """True for a device DID, data set id or owner id of the allowed characters and length."""
    return isinstance(text, str) and _ID_RE.fullmatch(text) is not None


def compute_window_start(t_s: int, window_s: int = WINDOW_S) -> int:
    """The start of the window holding time t_s."""
    return t_s - t_s % window_s


def compute_plaintext_len(schema: Schema, window_s: int) -> int:
    """The fixed plaintext length of a window: a count, then window_s slots of (time, values...)."""
    return _COUNT.size + window_s * (1 + len(schema.fields)) * _SAMPLE_WORD.size


def compute_ciphertext_len(schema: Schema, window_s: int) -> int:
    """The fixed ciphertext length of a window of this schema."""
    return compute_plaintext_len(schema, window_s) + GCM_TAG_LEN


def compute_nonce(seq: int) -> bytes:
    """The GCM nonce of a record: a constant prefix and the device's sequence number."""
    return NONCE_PREFIX + seq.to_bytes(8, "big")


def compute_wraps_digest(owner_wrap: WrappedKey, consumer_wraps: list[WrappedKey]) -> bytes:
    """The digest of a record's wrapped keys, as the device signs it."""
    return sha256(DOMAIN_WRAPS + encode([owner_wrap, *consumer_wraps]))


def compute_signing_bytes(header: RecordHeader, ciphertext: bytes, wraps_digest: bytes) -> bytes:
    """What the device signs: the header, the ciphertext's digest, the wraps' digest."""
    return DOMAIN_SIGN + encode(header) + sha256(ciphertext) + wraps_digest


def compute_record_id(stored: StoredRecord) -> bytes:
    """A record's id and Merkle leaf: the digest of what the vault keeps, wraps excluded, so it
    outlives erasure."""
    return compute_record_id_of_blob(encode(stored))


def compute_record_id_of_blob(blob: bytes) -> bytes:
    """compute_record_id of the stored record whose canonical bytes are blob (encoded once, not twice)."""
    return sha256(DOMAIN_RECORD + blob)


def check_header(header: RecordHeader) -> Schema:
    """The header's schema if every field is in range; raise TelemetryError naming the field."""
    if header.version != VERSION:
        raise TelemetryError("malformed", "header.version", f"expected {VERSION}, got {header.version}")
    for field in ("device", "dataset"):
        if not is_valid_id(getattr(header, field)):
            raise TelemetryError("malformed", f"header.{field}",
                                 f"expected 1 to {MAX_ID_LEN} of A-Z a-z 0-9 . _ : -")
    schema = SCHEMAS.get(header.schema)
    if schema is None:
        raise TelemetryError("malformed", "header.schema", f"expected one of {sorted(SCHEMAS)}")
    if not 0 <= header.seq <= MAX_SEQ:
        raise TelemetryError("malformed", "header.seq", f"expected 0 to {MAX_SEQ}, got {header.seq}")
    if not 1 <= header.window_s <= MAX_WINDOW_S:
        raise TelemetryError("malformed", "header.window_s", f"expected 1 to {MAX_WINDOW_S}, got {header.window_s}")
    if not 0 <= header.window_start_s <= MAX_TIME_S - header.window_s or header.window_start_s % header.window_s:
        raise TelemetryError("malformed", "header.window_start_s",
                             f"expected a multiple of {header.window_s} in 0..{MAX_TIME_S}")
    return schema


def check_samples(schema: Schema, window_start_s: int, window_s: int, samples: list[Sample]) -> None:
    """Raise TelemetryError unless samples are in the window, strictly increasing, within bounds."""
    previous = window_start_s - 1
    for index, sample in enumerate(samples):
        if not previous < sample.t_s < window_start_s + window_s:
            raise TelemetryError("malformed", f"samples[{index}].t_s",
                                 f"expected after {previous} and before {window_start_s + window_s}, got {sample.t_s}")
        previous = sample.t_s
        if len(sample.values) != len(schema.fields):
            raise TelemetryError("malformed", f"samples[{index}].values",
                                 f"expected {len(schema.fields)} values {schema.fields}, got {len(sample.values)}")
        for value, name, (low, high) in zip(sample.values, schema.fields, schema.bounds):
            if type(value) is not int or not low <= value <= high:
                raise TelemetryError("malformed", f"samples[{index}].{name}",
                                     f"expected an integer in {low}..{high}, got {value!r}")


def encode_window(schema: Schema, window_s: int, samples: list[Sample]) -> bytes:
    """The fixed-width plaintext of checked samples, zero-padded to the window's capacity."""
    words = [word for sample in samples for word in (sample.t_s, *sample.values)]
    body = _COUNT.pack(len(samples)) + struct.pack(f">{len(words)}q", *words)
    return body + bytes(compute_plaintext_len(schema, window_s) - len(body))


def decode_window(schema: Schema, header: RecordHeader, plaintext: bytes) -> list[Sample]:
    """The samples of a decrypted window; raise TelemetryError if the layout is not one a device makes."""
    if len(plaintext) != compute_plaintext_len(schema, header.window_s):
        raise TelemetryError("malformed", "plaintext", f"expected {compute_plaintext_len(schema, header.window_s)} bytes")
    (count,) = _COUNT.unpack_from(plaintext)
    width = 1 + len(schema.fields)
    if count > header.window_s:
        raise TelemetryError("malformed", "plaintext.count", f"expected at most {header.window_s}, got {count}")
    words = struct.unpack_from(f">{count * width}q", plaintext, _COUNT.size)
    used = _COUNT.size + count * width * _SAMPLE_WORD.size
    if any(plaintext[used:]):
        raise TelemetryError("malformed", "plaintext.padding", "expected zeros")
    samples = [Sample(words[i], tuple(words[i + 1:i + width])) for i in range(0, len(words), width)]
    check_samples(schema, header.window_start_s, header.window_s, samples)
    return samples

