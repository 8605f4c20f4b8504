"""Tails files: the issuer serves them, the wallet fetches them and checks their hash.

A tails file is public (it holds the revocation registry's generator points); the ledger anchors
its hash (base58 SHA-256), so a holder can fetch it from anywhere and trust it after checking.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

from ...modules.identity.did import b58encode

MAX_TAILS_BYTES = 64 * 1024 * 1024
MAX_TAILS_MIRRORS = 8  # nodes a holder asks for a tails file besides its anchored URL
Transport = Callable[[str], bytes]
# The base58 form of a SHA-256 digest: 32 to 44 characters of the base58 alphabet.
TAILS_HASH_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")


def compute_tails_hash(data: bytes) -> str:
    """The tails hash as anchored: base58 SHA-256 of the file."""
    return b58encode(hashlib.sha256(data).digest())


class TailsStore:
    """An issuer's tails files, by hash, and the URL under which it serves them."""

    def __init__(self, directory: Path | str, base_url: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url.rstrip("/") + "/"

    def location(self, tails_hash: str) -> str:
        """The public URL of a tails file."""
        return self.base_url + tails_hash

    def add(self, path: Path | str) -> str:
        """Move a freshly generated tails file in, named by its hash; return the hash."""
        data = Path(path).read_bytes()
        tails_hash = compute_tails_hash(data)
        target = self.directory / tails_hash
        if not target.exists():
            shutil.move(str(path), target)
        return tails_hash

    def path(self, tails_hash: str) -> Path:
        """The local path of a tails file."""
        return self.directory / tails_hash

    def serve(self, tails_hash: str) -> bytes:
        """The bytes of a tails file (what GET <base_url>/<hash> returns); raise LookupError or ValueError.

        Errors name the hash, never the folder: the node's home path is nobody's business.
        """
        if not isinstance(tails_hash, str) or not TAILS_HASH_RE.fullmatch(tails_hash):
            raise ValueError("tails_hash: expected a base58 SHA-256 hash (32 to 44 base58 characters)")
        try:
            return (self.directory / tails_hash).read_bytes()
        except OSError:
            raise LookupError(f"tails_hash: no tails file {tails_hash}") from None


def http_transport(url: str) -> bytes:
    """Fetch a URL over HTTP(S)."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (http(s) only, checked by the ledger)
        return response.read(MAX_TAILS_BYTES + 1)


class TailsFetcher:
    """A holder's cache of tails files by hash: fetched once, from any source, checked before use.

    A tails file is the same public file on every node that has it, and its hash is anchored, so
    the holder may take it from wherever is nearest: the anchored URL, else the same path under
    each mirror (other nodes' base URLs). A copy whose hash differs is skipped, never kept.
    """

    def __init__(self, cache_dir: Path | str | None = None, transport: Transport = http_transport,
                 mirrors: Sequence[str] = ()) -> None:
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="cityledger-tails-"))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.transport = transport
        self.mirrors = [m.rstrip("/") for m in mirrors][:MAX_TAILS_MIRRORS]
        self.fetches = 0  # downloads made (a cached file is never fetched again)

    def sources(self, location: str) -> list[str]:
        """Where to look for a tails file: its anchored URL, then the same path on each mirror."""
        path = urlsplit(location).path
        return [location] + [mirror + path for mirror in self.mirrors]

    def get(self, location: str, tails_hash: str) -> str:
        """A local path to the tails file with `tails_hash`; raise ValueError if no source has it."""
        if not isinstance(tails_hash, str) or not TAILS_HASH_RE.fullmatch(tails_hash):
            raise ValueError("tails_hash: expected a base58 SHA-256 hash (32 to 44 base58 characters)")
        target = self.cache_dir / tails_hash
        if target.is_file():
            return str(target)
        problems = []
        for source in self.sources(location):
            try:
                data = self.transport(source)
            except (OSError, LookupError, ValueError) as exc:  # unreachable, 404: try the next source
                problems.append(f"{source}: {str(exc)[:80]}")
                continue
            finally:
                self.fetches += 1
            if len(data) <= MAX_TAILS_BYTES and compute_tails_hash(data) == tails_hash:
                partial = target.with_suffix(".part")
                partial.write_bytes(data)
                os.replace(partial, target)
                return str(target)
            problems.append(f"{source}: does not match the anchored hash")
        raise ValueError(f"tails: no source served the file with the anchored hash {tails_hash} "
                         f"({'; '.join(problems)[:400]})")
