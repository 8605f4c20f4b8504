"""The device's side: a durable sequence counter and the sealer that turns a window into a message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ...core.encoding import encode
from ...core.files import write_secret_file
from ...core.keys import PrivateKey
from .crypto import encrypt_window, new_data_key, wrap_data_key
from .format import (
    MAX_CONSUMER_WRAPS,
    MAX_SEQ,
    SCHEMAS,
    VERSION,
    WINDOW_S,
    RecordHeader,
    Sample,
    TelemetryError,
    TelemetryMessage,
    check_header,
    check_samples,
    compute_signing_bytes,
    compute_window_start,
    compute_wraps_digest,
    encode_window,
)

_SEQ_LEN = 8


class SequenceCounter:
    """The device's next sequence number, kept in a file and advanced durably before it is used,
    so a restart never hands out a number (and so a GCM nonce) twice."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def peek(self) -> int:
        """The number the next take() returns (0 for a new device)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        if len(raw) != _SEQ_LEN:
            raise ValueError(f"{self.path}: expected {_SEQ_LEN} bytes, got {len(raw)}")
        return int.from_bytes(raw, "big")

    def take(self) -> int:
        """The next sequence number; the file already holds its successor when this returns."""
        seq = self.peek()
        if seq >= MAX_SEQ:
            raise ValueError(f"sequence: exhausted at {MAX_SEQ}")
        write_secret_file(self.path, (seq + 1).to_bytes(_SEQ_LEN, "big"))
        return seq


@dataclass(frozen=True)
class DeviceConfig:
    """What a device is told once: who it is, whom it seals for, where its records go."""

    device_did: str
    owner_vault_key: bytes  # the owner's X25519 public key
    dataset: str
    schema: str
    window_s: int = WINDOW_S


def seal_window(key: PrivateKey, config: DeviceConfig, seq: int, window_start_s: int, samples: list[Sample],
                consumer_keys: Iterable[bytes] = ()) -> TelemetryMessage:
    """A signed message of one window's samples, readable by the owner and the given consumers."""
    header = RecordHeader(VERSION, config.device_did, seq, config.dataset, config.schema, window_start_s,
                          config.window_s)
    schema = check_header(header)
    check_samples(schema, window_start_s, config.window_s, samples)
    consumers = sorted(set(consumer_keys))
    if len(consumers) > MAX_CONSUMER_WRAPS:
        raise TelemetryError("malformed", "consumer_keys", f"expected at most {MAX_CONSUMER_WRAPS}, got {len(consumers)}")
    if config.owner_vault_key in consumers:
        raise TelemetryError("malformed", "consumer_keys", "expected keys other than the owner's")
    # A fresh data key per record: even a nonce repeated by a broken counter never meets the same key.
    data_key = new_data_key()
    ciphertext = encrypt_window(data_key, header, encode_window(schema, config.window_s, samples))
    owner_wrap = wrap_data_key(data_key, config.owner_vault_key, header, "owner_vault_key")
    consumer_wraps = [wrap_data_key(data_key, consumer, header, f"consumer_keys[{index}]")
                      for index, consumer in enumerate(consumers)]
    digest = compute_wraps_digest(owner_wrap, consumer_wraps)
    signature = key.sign(compute_signing_bytes(header, ciphertext, digest))
    return TelemetryMessage(header, ciphertext, owner_wrap, consumer_wraps, signature)


def group_windows(samples: Sequence[Sample], window_s: int = WINDOW_S) -> list[tuple[int, list[Sample]]]:
    """Samples in time order cut into windows: [(window start, its samples)], oldest first."""
    windows: list[tuple[int, list[Sample]]] = []
    for sample in samples:
        start = compute_window_start(sample.t_s, window_s)
        if windows and windows[-1][0] == start:
            windows[-1][1].append(sample)
        else:
            windows.append((start, [sample]))
    return windows


class DeviceSealer:
    """A device's publisher side: takes a sequence number per window and returns the message bytes."""

    def __init__(self, key: PrivateKey, config: DeviceConfig, counter: SequenceCounter) -> None:
        self.key = key
        self.config = config
        self.counter = counter

    def seal(self, window_start_s: int, samples: list[Sample], consumer_keys: Iterable[bytes] = ()) -> bytes:
        """The wire bytes of one window; samples are checked before a sequence number is spent."""
        schema = SCHEMAS.get(self.config.schema)
        if schema is None:
            raise TelemetryError("malformed", "schema", f"expected one of {sorted(SCHEMAS)}")
        check_samples(schema, window_start_s, self.config.window_s, samples)
        seq = self.counter.take()
        return encode(seal_window(self.key, self.config, seq, window_start_s, samples, consumer_keys))

