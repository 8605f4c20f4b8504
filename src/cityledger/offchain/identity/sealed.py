"""Passphrase-sealed JSON files: "CLW1" || salt (16) || XSalsa20-Poly1305(JSON), key from Argon2id.

Used by the wallet and the issuer service for their private state; written to a temporary file
with mode 0600 and renamed over the old one, so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from ...core.files import write_secret_file

MAGIC = b"CLW1"
SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES


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
