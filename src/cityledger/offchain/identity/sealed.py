"""Passphrase-sealed JSON files: "CLW1" || salt (16) || XSalsa20-Poly1305(JSON), key from Argon2id.

Used by the wallet and the issuer service for their private state; written to a temporary file
with mode 0600 and renamed over the old one, so a crash leaves either the old or the new file.

A journal beside a sealed file holds small changes made since it was written, so that a change
need not rewrite the whole file: records of (4-byte big-endian length || XSalsa20-Poly1305(JSON))
under the same file key, appended and fsynced; a torn last record (a crash mid-append) ends it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from ...core.files import write_secret_file

MAGIC = b"CLW1"
SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES
RECORD_LENGTH_BYTES = 4


class SealError(ValueError):
    """A sealed file could not be opened (wrong passphrase, damaged or foreign file)."""


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """The file key: Argon2id with interactive limits."""
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt,
                                    opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                                    memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)


def new_salt() -> bytes:
    """A random salt for a new file."""
    return nacl.utils.random(SALT_BYTES)


def write_sealed(path: Path, key: bytes, salt: bytes, data: Any) -> None:
    """Encrypt `data` as JSON under `key` and replace the file atomically."""
    sealed = nacl.secret.SecretBox(key).encrypt(json.dumps(data).encode())
    write_secret_file(path, MAGIC + salt + sealed)


def read_sealed(path: Path, passphrase: str) -> tuple[Any, bytes, bytes]:
    """(data, key, salt) of a sealed file; raise SealError."""
    blob = Path(path).read_bytes()
    if not blob.startswith(MAGIC):
        raise SealError(f"path: {path} is not a sealed cityledger file")
    salt = blob[len(MAGIC):len(MAGIC) + SALT_BYTES]
    key = derive_key(passphrase, salt)
    try:
        plain = nacl.secret.SecretBox(key).decrypt(blob[len(MAGIC) + SALT_BYTES:])
    except nacl.exceptions.CryptoError:
        raise SealError("passphrase: wrong passphrase or damaged file") from None
    return json.loads(plain), key, salt


def append_sealed_record(path: Path, key: bytes, data: Any) -> None:
    """Append one record, sealed under `key`, to a journal file (mode 0600), and fsync it."""
    sealed = nacl.secret.SecretBox(key).encrypt(json.dumps(data).encode())
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as handle:
        handle.write(len(sealed).to_bytes(RECORD_LENGTH_BYTES, "big") + sealed)
        handle.flush()
        os.fsync(handle.fileno())


def read_sealed_records(path: Path, key: bytes) -> list[Any]:
    """A journal's records in order, up to the first torn or foreign one; [] if there is no journal."""
    try:
        blob = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    box, records, position = nacl.secret.SecretBox(key), [], 0
    while position + RECORD_LENGTH_BYTES <= len(blob):
        end = position + RECORD_LENGTH_BYTES + int.from_bytes(blob[position:position + RECORD_LENGTH_BYTES], "big")
        if end > len(blob):
            break
        try:
            records.append(json.loads(box.decrypt(blob[position + RECORD_LENGTH_BYTES:end])))
        except (nacl.exceptions.CryptoError, ValueError):
            break
        position = end
    return records
