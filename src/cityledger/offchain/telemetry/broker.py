"""The project's own Eclipse Mosquitto, run as a child process with a generated configuration.

Everything lives under one folder (`<home>/telemetry/broker`): mosquitto.conf, the password file,
the ACL file, the broker's persistence and log, and credentials.json (the registry the two files
are generated from: device DID -> its MQTT user name and password hash; never a password).

    broker = Broker(folder, port=0)          # 0: pick a free loopback port
    creds = broker.add_device(did)           # the one time the device's password is seen
    broker.start(); broker.wait_ready()
    broker.remove_device(did)                # regenerated files, SIGHUP: the broker reloads them
    broker.stop()

Devices authenticate with a per-device random password (PBKDF2-SHA512, Mosquitto's `$7$` format,
so no mosquitto_passwd call per device); the ACL lets each device write only its own topic,
`telemetry/<bucket>/<its DID>`, and lets the gateway user alone read `telemetry/#`. Anonymous
clients are refused. The bucket (two hex digits of the DID's SHA-256, TOPIC_BUCKETS of them) lets
several gateway processes share the fleet: gateway k of n subscribes to the buckets b with
b % n == k (shard_topics), so every device's messages reach one gateway, in order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ...core.files import write_secret_file
from .format import MAX_MESSAGE_BYTES, is_valid_id

TOPIC_PREFIX = "telemetry/"
TOPIC_BUCKETS = 256  # a device's topic bucket: the first byte of its DID's SHA-256
MAX_GATEWAYS = TOPIC_BUCKETS  # gateway processes one fleet can be split over
GATEWAY_USER = "gateway"
LOOPBACK = "127.0.0.1"
PASSWORD_BYTES = 24  # random bytes of a generated password (32 URL-safe characters)
PASSWORD_SALT_BYTES = 12  # Mosquitto's own salt length for $7$ hashes
PASSWORD_ITERATIONS = 101  # Mosquitto's default; the passwords are random, not chosen by people
MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 1024  # a message and its MQTT header; the broker drops larger
MAX_BROKER_DEVICES = 1_000_000  # devices one broker's password file may hold
BROKER_START_S = 10.0  # how long start() waits for the listener before giving up
BROKER_STOP_S = 5.0  # how long stop() waits after SIGTERM before SIGKILL
MAX_BIND_TRIES = 8  # free ports tried when the chosen one is taken between the pick and the bind
MAX_INFLIGHT = 20_000  # QoS 1 messages the broker sends a client (the gateway) before its acks
MAX_QUEUED = 1_000_000  # messages the broker queues for the gateway while it is away, then drops
AUTOSAVE_INTERVAL_S = 5  # how often the broker writes its queued QoS 1 messages to disk
RELOAD_LOG_LINE = b"Reloading config."  # what Mosquitto logs once a SIGHUP's reload is done
SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")  # Debian puts mosquitto in /usr/sbin


class BrokerError(RuntimeError):
    """The broker could not be set up, started or changed: the message says what and why."""


@dataclass(frozen=True)
class DeviceCredentials:
    """What a device's operator is given once: where to connect, as whom, with which password."""

    did: str
    username: str
    password: str
    topic: str
    host: str
    port: int  # the broker's port now: 0 before the first start when it picks a free one (set a fixed port for devices)


def find_binary(name: str) -> str | None:
    """The path of a Mosquitto tool: on PATH, else in Debian's sbin folders."""
    found = shutil.which(name)
    if found:
        return found
    for folder in SEARCH_PATH:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def dies_with_caller(command: list[str]) -> list[str]:
    """The command, run so that it gets SIGTERM when the process starting it dies, even by SIGKILL
    (Linux's parent-death signal, set by util-linux's setpriv, which then runs the command itself).
    Only from the main thread: the signal follows the thread that started the child, and a node's
    main thread lives as long as the node. Otherwise, or without setpriv, the command as it is."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return command
    return [setpriv, "--pdeathsig", "TERM", "--", *command]


def topic_bucket(did: str) -> int:
    """A device's bucket, 0 to TOPIC_BUCKETS - 1."""
    return hashlib.sha256(did.encode()).digest()[0] % TOPIC_BUCKETS


def device_topic(did: str) -> str:
    """The one topic a device may publish to: telemetry/<bucket, 2 hex digits>/<DID>."""
    return f"{TOPIC_PREFIX}{topic_bucket(did):02x}/{did}"


def device_shard(did: str, shards: int) -> int:
    """Which of `shards` gateways takes a device's messages."""
    return topic_bucket(did) % shards


def shard_topics(shard: int, shards: int) -> list[str]:
    """The topic filters gateway `shard` of `shards` subscribes to (all of telemetry/ for one)."""
    if not 1 <= shards <= MAX_GATEWAYS or not 0 <= shard < shards:
        raise ValueError(f"shard: expected 0 to shards - 1 and shards 1 to {MAX_GATEWAYS}, got {shard} of {shards}")
    if shards == 1:
        return [TOPIC_PREFIX + "#"]
    return [f"{TOPIC_PREFIX}{bucket:02x}/#" for bucket in range(shard, TOPIC_BUCKETS, shards)]


def device_username(did: str) -> str:
    """A device's MQTT user name: a digest of its DID (a DID holds ':', which the password file
    uses as its separator)."""
    return "dev-" + hashlib.sha256(did.encode()).hexdigest()[:32]


def hash_password(password: str, salt: bytes | None = None, iterations: int = PASSWORD_ITERATIONS) -> str:
    """A password in Mosquitto's `$7$` form: PBKDF2-HMAC-SHA512, base64 salt and digest."""
    salt = secrets.token_bytes(PASSWORD_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def pick_free_port(host: str = LOOPBACK) -> int:
    """A port free on host now (it may be taken before the broker binds it: start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def is_listening(host: str, port: int) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """One Mosquitto under `folder`, listening on host:port (port 0: a free one, picked at start)."""

    def __init__(self, folder: Path | str, host: str = LOOPBACK, port: int = 0) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port: expected 0 to 65535, got {port}")
        self.folder = Path(folder)
        self.host = host
        self.configured_port = port
        self.port = port
        self.process: subprocess.Popen | None = None
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.folder / "data").mkdir(exist_ok=True, mode=0o700)
        self._registry = self._load_registry()

    # -- credentials --------------------------------------------------------------------------

    @property
    def registry_path(self) -> Path:
        return self.folder / "credentials.json"

    def _load_registry(self) -> dict:
        try:
            registry = json.loads(self.registry_path.read_text())
        except FileNotFoundError:
            registry = {"gateway": None, "devices": {}}
        if not isinstance(registry, dict) or not isinstance(registry.get("devices"), dict):
            raise BrokerError(f"{self.registry_path}: expected {{'gateway': ..., 'devices': {{...}}}}")
        return registry

    def _save_registry(self) -> None:
        write_secret_file(self.registry_path, json.dumps(self._registry, sort_keys=True, indent=1))

    def gateway_password(self) -> str:
        """The gateway user's password, created on first use and kept in an owner-only file (the
        gateway runs beside the broker and needs it again after a restart)."""
        path = self.folder / "gateway.password"
        if path.exists() and self._registry.get("gateway"):
            return path.read_text()
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        write_secret_file(path, password)
        self._registry["gateway"] = hash_password(password)
        self._save_registry()
        self._write_files()
        return password

    def add_device(self, did: str) -> DeviceCredentials:
        """Register a device (a new password if it was registered already) and reload a running
        broker; the returned password is for the device's operator and is stored only hashed."""
        if not is_valid_id(did):
            raise ValueError("did: expected 1 to 128 of A-Z a-z 0-9 . _ : -")
        if did not in self._registry["devices"] and len(self._registry["devices"]) >= MAX_BROKER_DEVICES:
            raise BrokerError(f"devices: at most {MAX_BROKER_DEVICES} per broker")
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        self._registry["devices"][did] = {"username": device_username(did), "hash": hash_password(password)}
        self._save_registry()
        self._write_files()
        self.reload()
        return DeviceCredentials(did, device_username(did), password, device_topic(did), self.host, self.port)

    def remove_device(self, did: str) -> bool:
        """Decommission a device: its user and ACL entry go, a running broker reloads; False if unknown.
        A session the device already holds stays open until it disconnects (Mosquitto 2.0 re-checks
        the ACL on each publish, so it can no longer publish)."""
        if self._registry["devices"].pop(did, None) is None:
            return False
        self._save_registry()
        self._write_files()
        self.reload()
        return True

    def refresh(self) -> bool:
        """Take up devices another process added to credentials.json (`cityledger telemetry device-add` on
        the node's host): regenerate the files and reload a running broker if the registry changed."""
        registry = self._load_registry()
        if registry == self._registry:
            return False
        self._registry = registry
        self._write_files()
        self.reload()
        return True

    def devices(self) -> list[str]:
        """The registered device DIDs, sorted."""
        return sorted(self._registry["devices"])

    # -- generated files ----------------------------------------------------------------------

    def _write_files(self) -> None:
        """Write the password and ACL files from the registry (sorted: same registry, same bytes)."""
        lines, acl = [], []
        if self._registry.get("gateway"):
            lines.append(f"{GATEWAY_USER}:{self._registry['gateway']}")
            acl += [f"user {GATEWAY_USER}", f"topic read {TOPIC_PREFIX}#", ""]
        for did, entry in sorted(self._registry["devices"].items()):
            lines.append(f"{entry['username']}:{entry['hash']}")
            acl += [f"user {entry['username']}", f"topic write {device_topic(did)}", ""]
        write_secret_file(self.folder / "passwords", "\n".join(lines) + "\n")
        write_secret_file(self.folder / "acl", "\n".join(acl) + "\n")

    def _write_config(self) -> None:
        # Mosquitto started as root drops to the user `mosquitto`, who could not read these
        # owner-only files: it keeps the user that runs it (ignored when not root).
        user = pwd.getpwuid(os.getuid()).pw_name
        config = "\n".join([
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            "allow_anonymous false",
            f"password_file {self.folder / 'passwords'}",
            f"acl_file {self.folder / 'acl'}",
            f"user {user}",
            f"max_packet_size {MAX_PACKET_BYTES}",
            f"max_inflight_messages {MAX_INFLIGHT}",
            f"max_queued_messages {MAX_QUEUED}",
            "persistence true",
            f"persistence_location {self.folder / 'data'}/",
            f"autosave_interval {AUTOSAVE_INTERVAL_S}",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true", "",
        ])
        write_secret_file(self.folder / "mosquitto.conf", config)

    # -- process ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the broker and wait until it listens; with port 0, retry other free ports on bind failure."""
        if self.process is not None and self.process.poll() is None:
            return
        binary = find_binary("mosquitto")
        if binary is None:
            raise BrokerError("mosquitto: not found on PATH or in /usr/sbin; run scripts/install_mosquitto.sh")
        self.gateway_password()
        tries = MAX_BIND_TRIES if self.configured_port == 0 else 1
        for _ in range(tries):
            self.port = self.configured_port or pick_free_port(self.host)
            self._write_config()
            # A node killed outright takes its broker with it (which saves its queue as it goes), so
            # the next start finds the port free.
            self.process = subprocess.Popen(dies_with_caller([binary, "-c", str(self.folder / "mosquitto.conf")]),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
            if self._wait_listening():
                return
        raise BrokerError(f"mosquitto: could not listen on {self.host} after {tries} tries: {self._last_error()}")

    def _wait_listening(self) -> bool:
        """True once the listener accepts connections; False if the process exited (a port taken)."""
        deadline = time.monotonic() + BROKER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if is_listening(self.host, self.port):
                return True
            time.sleep(0.01)
        self.stop()
        raise BrokerError(f"mosquitto: not listening on {self.host}:{self.port} after {BROKER_START_S} s")

    def _last_error(self) -> str:
        stderr = self.process.stderr.read().decode(errors="replace") if self.process and self.process.stderr else ""
        log = self.folder / "mosquitto.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return (stderr.strip() + " " + " | ".join(tail)).strip() or "no output"

    def is_ready(self) -> bool:
        """True if the broker process runs and accepts connections."""
        return self.process is not None and self.process.poll() is None and is_listening(self.host, self.port)

    def reload(self) -> None:
        """Make a running broker re-read its password and ACL files (SIGHUP) and wait until it has
        (its log says so); nothing if stopped."""
        if self.process is None or self.process.poll() is not None:
            return
        before = self._count_reloads()
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + BROKER_START_S
        while self._count_reloads() <= before:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise BrokerError(f"mosquitto: did not reload within {BROKER_START_S} s: {self._last_error()}")
            time.sleep(0.005)

    def _count_reloads(self) -> int:
        log = self.folder / "mosquitto.log"
        return log.read_bytes().count(RELOAD_LOG_LINE) if log.exists() else 0

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after BROKER_STOP_S); it saves its queue on the way."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(BROKER_STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> "Broker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
