"""An encrypted keystore: one JSON file per key in a folder, the seed sealed by a passphrase.

    key  = scrypt(passphrase, salt, n, r, p) -> 32 bytes
    file = {"version": 1, "name", "scheme", "address", "public_key",
            "kdf": {"name": "scrypt", "salt", "n", "r", "p"},
            "cipher": {"name": "aes-256-gcm", "nonce"}, "ciphertext"}      (bytes as hex)

AES-GCM authenticates the public header too (it is the associated data), so a file whose address
or name was edited does not open. The passphrase never leaves this process.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..core.files import write_secret_file
from ..core.keys import SCHEME_NAMES, PrivateKey, scheme_from_name
from ..core.types import address_to_str
from .errors import KeyExists, KeyNotFound, KeystoreError, WrongPassphrase

FILE_VERSION = 1
DEFAULT_SCRYPT_N = 2**17  # OWASP's minimum for scrypt with r=8, p=1 (about half a second)
MIN_SCRYPT_N = 2**10
MAX_SCRYPT_N = 2**20  # bounds the memory a crafted file can make us spend (1 GiB at r=8)
SCRYPT_R = 8
SCRYPT_P = 1
MAX_KEYS = 10_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class KeyInfo:
    """What a key file shows without its passphrase."""

    name: str
    scheme: str
    address: str
    public_key: str
    path: Path


def check_name(name: str) -> str:
    """A key name: letters, digits, '_', '.', '-' (1 to 64, not starting with a symbol)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeystoreError(f"name: expected 1 to 64 letters, digits, '_', '.' or '-', got {name!r}")
    return name


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _header(doc: dict) -> bytes:
    """The associated data: the public fields, canonically serialised."""
    fields = {name: doc[name] for name in ("version", "name", "scheme", "address", "public_key")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


class Keystore:
    """Keys in a folder, each sealed with its own passphrase."""

    def __init__(self, folder: Path | str, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        if scrypt_n & (scrypt_n - 1) or not MIN_SCRYPT_N <= scrypt_n <= MAX_SCRYPT_N:
            raise KeystoreError(f"scrypt_n: expected a power of two from {MIN_SCRYPT_N} to {MAX_SCRYPT_N}, "
                                f"got {scrypt_n}")
        self.folder = Path(folder)
        self.scrypt_n = scrypt_n

    def path_of(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.json"

    def create(self, name: str, passphrase: str, scheme: str = "ed25519") -> KeyInfo:
        """Generate a fresh key and store it sealed."""
        return self.import_key(name, PrivateKey.generate(scheme_from_name(scheme)), passphrase)

    def import_key(self, name: str, key: PrivateKey, passphrase: str) -> KeyInfo:
        """Store an existing private key sealed under `passphrase`."""
        path = self.path_of(name)
        if path.exists():
            raise KeyExists(f"name: a key named {name!r} already exists in {self.folder}")
        if not passphrase:
            raise KeystoreError("passphrase: expected a non-empty passphrase")
        salt, nonce = os.urandom(16), os.urandom(12)
        doc = {"version": FILE_VERSION, "name": name, "scheme": SCHEME_NAMES[key.scheme],
               "address": address_to_str(key.address()), "public_key": key.public_key.key.hex(),
               "kdf": {"name": "scrypt", "salt": salt.hex(), "n": self.scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P},
               "cipher": {"name": "aes-256-gcm", "nonce": nonce.hex()}}
        secret = _derive(passphrase, salt, self.scrypt_n, SCRYPT_R, SCRYPT_P)
        doc["ciphertext"] = AESGCM(secret).encrypt(nonce, key.seed, _header(doc)).hex()
        self._write(path, doc)
        return self._info(doc, path)

    def list(self) -> list[KeyInfo]:
        """Every key in the folder, sorted by name (unreadable files are skipped)."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in sorted(self.folder.glob("*.json"))[:MAX_KEYS]:
            try:
                out.append(self._info(self._read(path), path))
            except KeystoreError:
                continue
        return out

    def info(self, name: str) -> KeyInfo:
        """The public facts of one key."""
        path = self.path_of(name)
        return self._info(self._read(path), path)

    def load(self, name: str, passphrase: str) -> PrivateKey:
        """Open a key; raise WrongPassphrase if the passphrase (or the file) is wrong."""
        path = self.path_of(name)
        doc = self._read(path)
        kdf, cipher = doc["kdf"], doc["cipher"]
        try:
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
            salt, nonce = bytes.fromhex(kdf["salt"]), bytes.fromhex(cipher["nonce"])
            ciphertext = bytes.fromhex(doc["ciphertext"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreError(f"{path}: malformed key file ({exc})") from None
        if kdf.get("name") != "scrypt" or cipher.get("name") != "aes-256-gcm":
            raise KeystoreError(f"{path}: unsupported kdf or cipher")
        if n & (n - 1) or not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N or not 1 <= r <= 32 or not 1 <= p <= 16:
            raise KeystoreError(f"{path}: kdf parameters out of range (n={n}, r={r}, p={p})")
        try:
            seed = AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, _header(doc))
        except InvalidTag:
            raise WrongPassphrase(f"passphrase: does not open key {name!r} (or its file was altered)") from None
        key = PrivateKey(scheme_from_name(doc["scheme"]), seed)
        if key.public_key.key.hex() != doc["public_key"]:
            raise KeystoreError(f"{path}: the sealed key does not match the file's public key")
        return key

    def _info(self, doc: dict, path: Path) -> KeyInfo:
        return KeyInfo(name=doc["name"], scheme=doc["scheme"], address=doc["address"], public_key=doc["public_key"],
                       path=path)

    def _read(self, path: Path) -> dict:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeyNotFound(f"name: no key named {path.stem!r} in {self.folder}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise KeystoreError(f"{path}: unreadable key file ({exc})") from None
        needed = ("version", "name", "scheme", "address", "public_key", "kdf", "cipher", "ciphertext")
        if not isinstance(doc, dict) or any(field not in doc for field in needed):
            raise KeystoreError(f"{path}: not a cityledger key file")
        if doc["version"] != FILE_VERSION:
            raise KeystoreError(f"{path}: unsupported key file version {doc['version']!r}")
        return doc

    def _write(self, path: Path, doc: dict) -> None:
        """Write atomically, readable by the owner only."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        write_secret_file(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
