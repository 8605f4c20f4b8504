"""Choosing where owners' vaults live: the `[vaults]` section of a node's config.toml.

    [vaults]
    backend = "sqlite"          # sqlite: SQLite + segment files under the home (the default)
                                # s3: an S3-compatible object store
    endpoint = ""               # s3: the S3 URL, e.g. "https://s3.city.example"; "" runs the
                                # node's own SeaweedFS (scripts/install_seaweedfs.sh) under the home
    bucket = "cityledger-vaults"
    credentials_file = "vault_s3_credentials.json"   # s3 with an endpoint: JSON {"access_key", "secret_key"}, mode 0600
    region = "us-east-1"
    port = 0                    # s3 without endpoint: the own SeaweedFS's S3 port (0: a free one)

`open_vaults(settings, home)` gives the VaultHost for the chosen backend; every wrong setting is
refused with a ValueError naming it (`vaults.<name>: expected ...`), before anything is opened.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass, fields
from pathlib import Path

from .vault import VaultHost

BACKENDS = ("sqlite", "s3")
DEFAULT_BUCKET = "cityledger-vaults"
DEFAULT_CREDENTIALS_FILE = "vault_s3_credentials.json"
MAX_ENDPOINT_CHARS = 2048  # an endpoint URL longer than this is refused as a setting
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's bucket naming rules (3 to 63 characters)
_ENDPOINT_RE = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?")
_REGION_RE = re.compile(r"[a-z0-9-]{1,32}")


@dataclass(frozen=True)
class VaultsSettings:
    """The [vaults] section."""

    backend: str = "sqlite"
    endpoint: str = ""
    bucket: str = DEFAULT_BUCKET
    credentials_file: str = DEFAULT_CREDENTIALS_FILE
    region: str = "us-east-1"
    port: int = 0


def load_vaults_settings(section: dict) -> VaultsSettings:
    """The [vaults] section checked: a ValueError names the first wrong setting and what was expected."""
    if not isinstance(section, dict):
        raise ValueError("vaults: expected a table")
    default = VaultsSettings()
    names = [f.name for f in fields(VaultsSettings)]
    unknown = sorted(set(section) - set(names))
    if unknown:
        raise ValueError(f"vaults.{unknown[0]}: unknown setting; expected one of {', '.join(names)}")
    values = {}
    for name in names:
        value = section.get(name, getattr(default, name))
        kind = type(getattr(default, name))
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"vaults.{name}: expected {kind.__name__}, got {value!r}")
        values[name] = value
    settings = VaultsSettings(**values)
    if settings.backend not in BACKENDS:
        raise ValueError(f"vaults.backend: expected one of {', '.join(repr(b) for b in BACKENDS)}, got {settings.backend!r}")
    if settings.endpoint and (len(settings.endpoint) > MAX_ENDPOINT_CHARS or not _ENDPOINT_RE.fullmatch(settings.endpoint)):
        raise ValueError(f"vaults.endpoint: expected an http:// or https:// URL (or \"\" for the node's own SeaweedFS), "
                         f"got {settings.endpoint[:100]!r}")
    if not _BUCKET_RE.fullmatch(settings.bucket) or ".." in settings.bucket:
        raise ValueError(f"vaults.bucket: expected 3 to 63 of a-z 0-9 . - starting and ending with a letter or digit, "
                         f"got {settings.bucket[:100]!r}")
    if not settings.credentials_file or "\x00" in settings.credentials_file:
        raise ValueError("vaults.credentials_file: expected a file name (relative to the home) or an absolute path")
    if not _REGION_RE.fullmatch(settings.region):
        raise ValueError(f"vaults.region: expected 1 to 32 of a-z 0-9 -, got {settings.region[:100]!r}")
    if not 0 <= settings.port <= 65535:
        raise ValueError(f"vaults.port: expected 0 (any free port) to 65535, got {settings.port}")
    return settings


def load_credentials(path: Path):
    """The S3 key pair in path: JSON {"access_key": ..., "secret_key": ...}, readable by the owner only."""
    from .seaweedfs import S3Credentials

    try:
        mode = path.stat().st_mode
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"vaults.credentials_file: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"vaults.credentials_file: {path} is not readable JSON ({exc})") from None
    if stat.S_IMODE(mode) & 0o077:
        raise ValueError(f"vaults.credentials_file: {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                         "expected 600")
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) and raw.get(k) for k in ("access_key", "secret_key")):
        raise ValueError(f"vaults.credentials_file: {path}: expected {{\"access_key\": \"...\", \"secret_key\": \"...\"}}")
    return S3Credentials(raw["access_key"], raw["secret_key"])


class Vaults:
    """The owners' vaults of a node and what runs them: `host`, and the own SeaweedFS if any."""

    def __init__(self, host: VaultHost, server=None) -> None:
        self.host, self.server = host, server

    def close(self) -> None:
        """Close every vault, then stop the own SeaweedFS."""
        self.host.close()
        if self.server is not None:
            self.server.stop()


def open_vaults(settings: VaultsSettings, home: Path | str, root: Path | str) -> Vaults:
    """The vaults as configured: SQLite folders under root, or prefixes of an S3 bucket (the node's
    own SeaweedFS under root/seaweedfs when no endpoint is set)."""
    if settings.backend == "sqlite":
        return Vaults(VaultHost(root))
    from .s3_store import S3VaultStore, make_client, open_bucket
    from .seaweedfs import SeaweedServer

    server, on_delete = None, None
    if settings.endpoint:
        path = Path(settings.credentials_file)
        credentials = load_credentials(path if path.is_absolute() else Path(home) / path)
        endpoint = settings.endpoint
    else:
        server = SeaweedServer(Path(root) / "seaweedfs", bucket=settings.bucket, s3_port=settings.port)
        server.start()
        credentials, endpoint, on_delete = server.credentials, server.endpoint, server.purge
    try:
        client = make_client(endpoint, credentials, settings.region)
        open_bucket(client, settings.bucket, create=server is not None)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    host = VaultHost(root, open_store=lambda name: S3VaultStore(client, settings.bucket, name, on_delete))
    return Vaults(host, server)


def default_root(home: Path | str) -> Path:
    """Where a node's vaults live by default: <home>/telemetry/vaults."""
    return Path(home) / "telemetry" / "vaults"


__all__ = ["BACKENDS", "Vaults", "VaultsSettings", "default_root", "load_credentials", "load_vaults_settings",
           "open_vaults"]
