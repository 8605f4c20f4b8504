"""Key files of a node's home: the node key, the consortium members' keys, the offices' keys.

One small module that node/home.py and node/issuers.py both use, so neither imports the other for
it. A key file is JSON, {"scheme", "seed"[, "name"]}, written 0600 from its first byte
(core/files.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.files import write_secret_file
from ..core.keys import SCHEME_NAMES, PrivateKey, scheme_from_name


def write_key_file(path: Path, key: PrivateKey, name: str | None = None) -> None:
    """Write a plaintext key file (scheme and seed, and a display name if given)."""
    payload = {"scheme": SCHEME_NAMES[key.scheme], "seed": key.seed.hex()}
    if name is not None:
        payload["name"] = name
    write_secret_text(path, json.dumps(payload, indent=2))


def write_secret_text(path: Path, text: str) -> None:
    """Write a secret one-line text file (a token, a passphrase), 0600 from its first byte."""
    write_secret_file(path, text + "\n")


def load_key(path: Path) -> PrivateKey:
    """Read a key file written by write_key_file."""
    data = json.loads(Path(path).read_text())
    return PrivateKey(scheme_from_name(data["scheme"]), bytes.fromhex(data["seed"]))
