"""The operator's chargers: id, owner and a hashed OCPP basic-auth password (security profile 1).

`add_charger` returns the password once; only a salted scrypt hash is kept, in memory or in a JSON
file written atomically, so a stolen file does not let anyone connect as a charger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

MAX_CHARGER_ID_CHARS = 48  # OCPP's identity string (the last path segment) is at most 48 chars
MAX_CHARGERS = 100_000  # chargers one registry holds
PASSWORD_BYTES = 24  # random bytes of a generated password (OCPP 2.0.1 allows 16 to 40 chars)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # password hash cost (about 16 MiB, tens of ms)
CHARGER_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,%d}" % MAX_CHARGER_ID_CHARS)


class RegistryError(ValueError):
    """A charger that cannot be added: why, naming the field."""


@dataclass(frozen=True)
class Charger:
    """One registered charger: who owns it and its password's salt and hash."""

    charger_id: str
    owner: str
    salt: bytes
    password_hash: bytes


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def _identity(path: Path) -> tuple[int, int, int]:
    """What changes when the file is replaced: inode, modification time, size."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class ChargerRegistry:
    """Chargers allowed to connect, optionally persisted in `path` (JSON)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._chargers: dict[str, Charger] = {}
        self._loaded: tuple[int, int, int] | None = None  # (inode, mtime, size): each save is a new file
        self._reload()

    def _reload(self) -> bool:
        """Read the file again if another process (`charging charger add`) changed it since; True if so."""
        if self.path is None or not self.path.exists():
            return False
        seen = _identity(self.path)
        if seen == self._loaded:
            return False
        chargers = {}
        for row in json.loads(self.path.read_text()):
            charger = Charger(row["id"], row["owner"], bytes.fromhex(row["salt"]), bytes.fromhex(row["hash"]))
            chargers[charger.charger_id] = charger
        self._chargers, self._loaded = chargers, seen
        return True

    def add_charger(self, charger_id: str, owner: str) -> str:
        """Register a charger (or give it a new password); return its password, shown only now."""
        self._reload()  # keep what another process added since
        if not isinstance(charger_id, str) or not CHARGER_ID_RE.fullmatch(charger_id):
            raise RegistryError(f"charger_id: expected 1 to {MAX_CHARGER_ID_CHARS} of A-Z a-z 0-9 . _ : -, "
                                f"got {charger_id!r}")
        if not isinstance(owner, str) or not owner:
            raise RegistryError(f"owner: expected the owner's address or DID, got {owner!r}")
        if charger_id not in self._chargers and len(self._chargers) >= MAX_CHARGERS:
            raise RegistryError(f"charger_id: the registry holds its maximum of {MAX_CHARGERS} chargers")
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        salt = os.urandom(16)
        self._chargers[charger_id] = Charger(charger_id, owner, salt, _hash(password, salt))
        self._save()
        return password

    def get(self, charger_id: str) -> Charger | None:
        """The registered charger, or None."""
        return self._chargers.get(charger_id)

    def chargers(self) -> list[Charger]:
        """Every registered charger, by id."""
        return sorted(self._chargers.values(), key=lambda c: c.charger_id)

    def is_valid_login(self, charger_id: str, password: str) -> bool:
        """True if `password` is the registered charger's password (as the file says now)."""
        if self._matches(charger_id, password):
            return True
        # A charger added or given a new password (`charging charger add`) while the CSMS runs.
        return self._reload() and self._matches(charger_id, password)

    def is_registered(self, charger_id: str) -> bool:
        """True if the charger is registered (as the file says now): profile 3's certificate stands for its password."""
        return charger_id in self._chargers or (self._reload() and charger_id in self._chargers)

    def _matches(self, charger_id: str, password: str) -> bool:
        charger = self._chargers.get(charger_id)
        return charger is not None and hmac.compare_digest(_hash(password, charger.salt), charger.password_hash)

    def _save(self) -> None:
        if self.path is None:
            return
        rows = [{"id": c.charger_id, "owner": c.owner, "salt": c.salt.hex(), "hash": c.password_hash.hex()}
                for c in sorted(self._chargers.values(), key=lambda c: c.charger_id)]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._loaded = _identity(self.path)
