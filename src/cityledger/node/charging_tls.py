"""The home's charging TLS files: the city charging CA, the CSMS's server certificate, chargers' certificates.

    cityledger charging tls-init --host csms.city.example --host 10.0.0.5   # CA (once) + server cert
    cityledger charging tls-issue CP-1                                     # profile 3: a charger's cert

Everything lives under <home>/charging/tls/ (folder mode 700, every file mode 600, each written
atomically): ca.pem and ca.key (the CA chargers install and trust), server.pem and server.key (what
the CSMS presents), chargers/<id>.pem and .key. Running tls-init again keeps the CA, so chargers
that trust it go on trusting the CSMS; it reissues the server certificate for the hosts given.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ..core.files import write_secret_file
from ..offchain.charging.registry import CHARGER_ID_RE, MAX_CHARGER_ID_CHARS
from ..offchain.charging.tls import (
    compute_alt_names,
    compute_ca,
    compute_certificate,
    compute_fingerprint,
    load_certificate,
    load_private_key,
    pem_certificate,
    pem_key,
    server_context,
)
from .home import ChargingConfig, set_section

TLS_DIR = "charging/tls"  # in the home
CA_NAME = "cityledger city charging CA"
DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def tls_folder(home: Path) -> Path:
    """The city charging CA and the CSMS's certificates."""
    return Path(home) / TLS_DIR


def home_file(home: Path, value: str, name: str) -> Path:
    """A file a setting names in the home: it must exist and stay inside the home (no symlink out)."""
    path = Path(home) / value
    if not path.is_file():
        raise ValueError(f"{name}: no file {path}")
    if not path.resolve().is_relative_to(Path(home).resolve()):
        raise ValueError(f"{name}: {path} leads outside the home (to {path.resolve()})")
    return path


def open_tls_context(home: Path, settings: ChargingConfig) -> ssl.SSLContext | None:
    """The CSMS's TLS context from [charging] tls_cert/tls_key (and tls_client_ca), or None for ws://."""
    if not settings.tls_cert:
        return None
    cert = home_file(home, settings.tls_cert, "charging.tls_cert")
    key = home_file(home, settings.tls_key, "charging.tls_key")
    client_ca = home_file(home, settings.tls_client_ca, "charging.tls_client_ca") if settings.tls_client_ca else None
    return server_context(cert, key, client_ca)  # TlsError (a ValueError) names the setting


def init_tls(home: Path, hosts: list[str], client_certificates: bool = False) -> dict[str, str]:
    """Create the CA (unless it exists) and a server certificate for `hosts`; set [charging] to serve wss://.

    Returns the files written and the CA's SHA-256 fingerprint. Raises TlsError naming a bad host
    before anything is written.
    """
    home, folder = Path(home), tls_folder(home)
    config_path = home / "config.toml"
    config = config_path.read_text()  # FileNotFoundError before anything is written
    compute_alt_names(list(hosts))  # TlsError naming a bad host, before anything is written
    ca_key, ca_cert = _open_or_create_ca(folder)
    key, cert = compute_certificate(ca_key, ca_cert, "cityledger CSMS", list(hosts))
    write_secret_file(folder / "server.key", pem_key(key))
    write_secret_file(folder / "server.pem", pem_certificate(cert))
    values: dict[str, object] = {"tls_cert": f"{TLS_DIR}/server.pem", "tls_key": f"{TLS_DIR}/server.key"}
    if client_certificates:
        values["tls_client_ca"] = f"{TLS_DIR}/ca.pem"
    config_path.write_text(set_section(config, "charging", values))
    return {"ca": str(folder / "ca.pem"), "fingerprint": compute_fingerprint(ca_cert),
            "server_cert": str(folder / "server.pem"), "server_key": str(folder / "server.key")}


def _open_or_create_ca(folder: Path):
    """The CA's key and certificate: read if both exist, else created (folder mode 700)."""
    if (folder / "ca.key").exists() and (folder / "ca.pem").exists():
        return load_private_key(folder / "ca.key"), load_certificate(folder / "ca.pem")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_cert = compute_ca(CA_NAME)
    write_secret_file(folder / "ca.key", pem_key(ca_key))
    write_secret_file(folder / "ca.pem", pem_certificate(ca_cert))
    return ca_key, ca_cert


def issue_charger_certificate(home: Path, charger_id: str) -> dict[str, str]:
    """Profile 3: a certificate the city CA issues to a charger (CN = its id); the files written."""
    folder = tls_folder(home)
    if not CHARGER_ID_RE.fullmatch(charger_id):
        raise ValueError(f"charger_id: expected 1 to {MAX_CHARGER_ID_CHARS} of A-Z a-z 0-9 . _ : -, "
                         f"got {charger_id[:80]!r}")
    if not (folder / "ca.key").exists():
        raise ValueError(f"ca: no city charging CA in {folder}; run `cityledger charging tls-init` first")
    ca_key, ca_cert = load_private_key(folder / "ca.key"), load_certificate(folder / "ca.pem")
    key, cert = compute_certificate(ca_key, ca_cert, charger_id)
    chargers = folder / "chargers"
    chargers.mkdir(mode=0o700, exist_ok=True)
    write_secret_file(chargers / f"{charger_id}.key", pem_key(key))
    write_secret_file(chargers / f"{charger_id}.pem", pem_certificate(cert))
    return {"charger_id": charger_id, "cert": str(chargers / f"{charger_id}.pem"),
            "key": str(chargers / f"{charger_id}.key"), "ca": str(folder / "ca.pem")}
