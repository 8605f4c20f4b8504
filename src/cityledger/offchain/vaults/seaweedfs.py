"""A local SeaweedFS S3 server run as a child process: the object store behind the S3 vault backend
for a single node, and the real server the tests run the S3 backend against.

Everything lives under one folder: data/ (master metadata, volumes, the filer's LevelDB store),
tmp/ (the process's TMPDIR, so no chunk lands outside the folder), s3.json (the server's S3
identities: one access key and secret, so every request is authenticated and anonymous ones are
refused), credentials.json (the same key pair for clients, owner-only), ports.json and weed.log.

    server = SeaweedServer(folder)        # s3_port 0: free loopback ports, kept across restarts
    server.start()                        # waits until an authenticated S3 request succeeds
    server.endpoint, server.credentials   # what an S3 client needs
    server.purge(deleted)                 # after deletes: the needles' bytes gone from the volumes
    server.stop()

Durability: at start the bucket gets a filer storage rule with fsync, so SeaweedFS fsyncs the volume
needle and the filer's entry before it answers a PUT (its default is to leave both to the page cache).
Deleted objects stay in the volume files until a vacuum compacts them: `purge` waits for the filer's
asynchronous chunk deletion to reach the volume server, then vacuums, so crypto-shredded key objects
are really gone from the files (tests/test_vault_s3.py scans them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ...core.files import write_secret_file

LOOPBACK = "127.0.0.1"
DEFAULT_BUCKET = "cityledger-vaults"
WEED_ENV = "CITYLEDGER_WEED"  # a weed binary to use instead of the one scripts/install_seaweedfs.sh builds
INSTALL_HINT = "run `make install` or `bash scripts/install_seaweedfs.sh` (builds .tools/bin/weed)"
WEED_START_S = 60.0  # how long start() waits for the first authenticated S3 request to succeed
# How long stop() waits after SIGTERM before SIGKILL. The volume server and the filer close within
# a fraction of a second, but `weed server` as a whole does not exit (its master and S3 gateway keep
# retrying the filer): the kill loses nothing, every acknowledged write was fsynced already.
WEED_STOP_S = 3.0
PURGE_S = 30.0  # how long purge() waits for deletions to reach the volumes and the vacuum to finish
POLL_S = 0.05  # pause between readiness and purge polls
MAX_BIND_TRIES = 4  # fresh port sets tried when one was taken between the pick and the bind
VOLUME_SIZE_LIMIT_MB = 1024  # a volume takes writes until this large; a vacuum rewrites one volume at a time
MAX_VOLUMES = 16  # volumes the volume server may hold (x VOLUME_SIZE_LIMIT_MB = the store's capacity)
ACCESS_KEY_BYTES = 12  # random bytes of a generated access key id
SECRET_KEY_BYTES = 30  # random bytes of a generated secret key
VACUUM_THRESHOLD = "0.000001"  # garbage ratio above which a volume is compacted: any deleted needle
_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")


class SeaweedError(RuntimeError):
    """The SeaweedFS server could not be found, started, configured or purged: the message says why."""


@dataclass(frozen=True)
class S3Credentials:
    """An S3 access key and its secret."""

    access_key: str
    secret_key: str

    @classmethod
    def generate(cls) -> "S3Credentials":
        """A fresh random key pair."""
        return cls("CL" + secrets.token_hex(ACCESS_KEY_BYTES).upper(), secrets.token_urlsafe(SECRET_KEY_BYTES))

    def to_json(self) -> str:
        """The credentials file's content."""
        return json.dumps({"access_key": self.access_key, "secret_key": self.secret_key}, indent=1) + "\n"


def find_weed() -> str | None:
    """The weed binary: $CITYLEDGER_WEED, else the repository's .tools/bin/weed, else one on PATH."""
    configured = os.environ.get(WEED_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    repo_tools = Path(__file__).resolve().parents[4] / ".tools" / "bin" / "weed"
    if repo_tools.is_file() and os.access(repo_tools, os.X_OK):
        return str(repo_tools)
    return shutil.which("weed")


def pick_free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports free on host now (one may be taken before weed binds it: start() retries)."""
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind((host, 0))
            probes.append(probe)
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _http_json(url: str, timeout_s: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback admin API
        return json.loads(response.read())


class SeaweedServer:
    """One `weed server` (master, volume, filer, S3 gateway) under `folder`, listening on loopback."""

    def __init__(self, folder: Path | str, bucket: str = DEFAULT_BUCKET, host: str = LOOPBACK, s3_port: int = 0) -> None:
        if not 0 <= s3_port <= 65535:
            raise ValueError(f"s3_port: expected 0 (any free port) to 65535, got {s3_port}")
        self.folder = Path(folder)
        self.bucket, self.host, self.configured_s3_port = bucket, host, s3_port
        self.process: subprocess.Popen | None = None
        for sub in (self.folder, self.data_path, self.folder / "tmp"):
            sub.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.credentials = self._load_or_create_credentials()
        self.ports = self._load_ports()

    @property
    def data_path(self) -> Path:
        """Where master, volume and filer keep their files (the bytes the erasure test scans)."""
        return self.folder / "data"

    @property
    def credentials_path(self) -> Path:
        return self.folder / "credentials.json"

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL (valid once started)."""
        return f"http://{self.host}:{self.ports['s3']}"

    def _load_or_create_credentials(self) -> S3Credentials:
        if self.credentials_path.exists():
            raw = json.loads(self.credentials_path.read_text())
            return S3Credentials(raw["access_key"], raw["secret_key"])
        credentials = S3Credentials.generate()
        write_secret_file(self.credentials_path, credentials.to_json())
        return credentials

    def _load_ports(self) -> dict[str, int]:
        path = self.folder / "ports.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _write_config(self) -> None:
        identity = {"name": "cityledger-vaults", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    "credentials": [{"accessKey": self.credentials.access_key,
                                     "secretKey": self.credentials.secret_key}]}
        write_secret_file(self.folder / "s3.json", json.dumps({"identities": [identity]}, indent=1))
        write_secret_file(self.folder / "ports.json", json.dumps(self.ports, sort_keys=True))

    def _command(self, binary: str) -> list[str]:
        p = self.ports
        return [binary, "server", f"-ip={self.host}", f"-ip.bind={self.host}", f"-dir={self.data_path}",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                f"-filer.localSocket={self.folder / 'tmp' / 'filer.sock'}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={self.folder / 's3.json'}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
                f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}", f"-volume.max={MAX_VOLUMES}",
                # Vacuums run when purge() asks, not on the master's own schedule mid-test.
                "-master.vacuumIntervalSeconds=86400",
                # One volume server and no other client to hand over to: stop at once, not after 10 s.
                "-volume.preStopSeconds=0"]

    def start(self) -> None:
        """Start the server, create the bucket with its fsync rule, and return once an authenticated
        S3 write succeeds; ports are kept from the last start (new free ones if those are taken)."""
        if self.process is not None and self.process.poll() is None:
            return
        binary = find_weed()
        if binary is None:
            raise SeaweedError(f"weed: not found ({WEED_ENV}, .tools/bin/weed, PATH); {INSTALL_HINT}")
        for attempt in range(MAX_BIND_TRIES):
            if attempt or not self.ports or not self._ports_free():
                self.ports = dict(zip(_PORTS, pick_free_ports(len(_PORTS), self.host)))
                if self.configured_s3_port:
                    self.ports["s3"] = self.configured_s3_port
            self._write_config()
            log = open(self.folder / "weed.log", "ab")
            env = dict(os.environ, TMPDIR=str(self.folder / "tmp"))
            self.process = subprocess.Popen(self._command(binary), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
            log.close()
            if self._wait_ready():
                self._configure_bucket(binary)
                return
            self.stop()
        raise SeaweedError(f"weed: could not start on {self.host} after {MAX_BIND_TRIES} tries: {self.log_tail()}")

    def _ports_free(self) -> bool:
        for port in self.ports.values():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((self.host, port))
                except OSError:
                    return False
        return True

    def _wait_ready(self) -> bool:
        """True once an authenticated write to the bucket succeeds; False if the process exited."""
        from .s3_store import make_client, open_bucket

        client = make_client(self.endpoint, self.credentials)
        deadline = time.monotonic() + WEED_START_S
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                open_bucket(client, self.bucket, create=True)
                # The first write needs a volume grown and heard of by the master: wait for it here.
                # Written once, never overwritten: an overwrite would leave a deleted needle behind,
                # which purge() would count as one of an erasure's.
                if not client.list_objects_v2(Bucket=self.bucket, Prefix=".ready", MaxKeys=1).get("Contents"):
                    client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ready")
                return True
            except Exception as exc:  # noqa: BLE001 - not up yet: refused, 5xx, identities not loaded yet
                last_error = str(exc)
            time.sleep(POLL_S)
        self.stop()
        raise SeaweedError(f"weed: S3 not ready on {self.endpoint} after {WEED_START_S} s ({last_error}): {self.log_tail()}")

    def _configure_bucket(self, binary: str) -> None:
        """Ask the filer to fsync the bucket's writes (needle and entry) before it acknowledges them."""
        script = f"fs.configure -locationPrefix=/buckets/{self.bucket}/ -fsync=true -apply\nexit\n"
        result = subprocess.run([binary, "shell", f"-master={self.host}:{self.ports['master']}.{self.ports['master_grpc']}",
                                 f"-filer={self.host}:{self.ports['filer']}.{self.ports['filer_grpc']}"],
                                input=script, capture_output=True, text=True, timeout=WEED_START_S,
                                env=dict(os.environ, TMPDIR=str(self.folder / "tmp")))
        if result.returncode != 0 or not self.fsync_configured():
            raise SeaweedError(f"weed shell: could not set the fsync rule on /buckets/{self.bucket}/: "
                               f"{(result.stdout + result.stderr).strip()[-500:]}")

    def fsync_configured(self) -> bool:
        """True if the filer's configuration holds the fsync rule for the bucket."""
        url = f"http://{self.host}:{self.ports['filer']}/etc/seaweedfs/filer.conf"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback filer
                conf = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return any(loc.get("locationPrefix") == f"/buckets/{self.bucket}/" and loc.get("fsync")
                   for loc in conf.get("locations", []))

    def deleted_needles(self) -> int:
        """Needles marked deleted in the volume server's volumes and not yet compacted away."""
        status = _http_json(f"http://{self.host}:{self.ports['volume']}/status")
        return sum(volume.get("DeleteCount", 0) for volume in status.get("Volumes") or [])

    def purge(self, deleted: int) -> None:
        """After `deleted` objects were deleted: wait until the filer's asynchronous chunk deletion has
        marked at least that many needles deleted, then vacuum until no deleted needle is left."""
        deadline = time.monotonic() + PURGE_S
        while self.deleted_needles() < deleted:
            if time.monotonic() > deadline:
                raise SeaweedError(f"weed: {deleted} deletions did not reach the volumes within {PURGE_S} s")
            time.sleep(POLL_S)
        while True:
            _http_json(f"http://{self.host}:{self.ports['master']}/vol/vacuum?garbageThreshold={VACUUM_THRESHOLD}",
                       timeout_s=PURGE_S)
            if self.deleted_needles() == 0:
                return
            if time.monotonic() > deadline:
                raise SeaweedError(f"weed: volumes still hold deleted needles after {PURGE_S} s of vacuum")
            time.sleep(POLL_S)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines weed logged."""
        log = self.folder / "weed.log"
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:]) if log.exists() else "no log"

    def stop(self) -> None:
        """Stop every server of the process group (SIGTERM, then SIGKILL after WEED_STOP_S)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(WEED_STOP_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> "SeaweedServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
