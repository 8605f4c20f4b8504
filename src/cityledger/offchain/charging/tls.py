"""OCPP over TLS: the city charging CA, its certificates, and the contexts both ends speak TLS with.

    ca_key, ca_cert = compute_ca("City charging CA")
    key, cert = compute_certificate(ca_key, ca_cert, "csms", ["127.0.0.1", "localhost"])
    context = server_context(cert_path, key_path)            # security profile 2: TLS + basic auth
    context = server_context(cert_path, key_path, ca_path)   # profile 3: chargers present certificates
    await connect("wss://host:9000/ocpp/CP-1", **connect_options(client_context(ca_path)))

Everything is generated here with the `cryptography` package; nothing is downloaded. OCPP 2.0.1
asks for TLS 1.2 at least, so neither end accepts an older version.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALID_DAYS = 3650  # the city CA's certificate, installed once on every charger
CERT_VALID_DAYS = 825  # a server or charger certificate (the CA/Browser Forum's old ceiling)
MAX_HOSTS = 32  # subjectAltName entries of one server certificate
MAX_HOST_CHARS = 253  # one DNS name (RFC 1035)
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2  # OCPP 2.0.1 A00.FR.318


class TlsError(ValueError):
    """A certificate, key or host name that cannot be used; the message names the field."""


def compute_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh CA key (P-256) and its self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (_builder(name, name, key.public_key(), CA_VALID_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def compute_certificate(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common_name: str,
                        hosts: list[str] | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh key and its certificate signed by the CA: a server's with `hosts`, else a charger's (client)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = ExtendedKeyUsageOID.SERVER_AUTH if hosts is not None else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_builder(subject, ca_cert.subject, key.public_key(), CERT_VALID_DAYS)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if hosts is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(compute_alt_names(hosts)), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # a charger's clock running a little late
            .not_valid_after(now + datetime.timedelta(days=days)))


def compute_alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    """subjectAltName entries: IP addresses as such, anything else as a DNS name; TlsError naming a bad one."""
    if not 1 <= len(hosts) <= MAX_HOSTS:
        raise TlsError(f"--host: expected 1 to {MAX_HOSTS} names or addresses, got {len(hosts)}")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        labels = host.rstrip(".").split(".")
        if not host or len(host) > MAX_HOST_CHARS or not all(_is_dns_label(label) for label in labels):
            raise TlsError(f"--host: expected an IP address or a DNS name, got {host[:80]!r}")
        names.append(x509.DNSName(host.rstrip(".").lower()))
    return names


def _is_dns_label(label: str) -> bool:
    return 1 <= len(label) <= 63 and label.isascii() and label.replace("-", "").replace("*", "").isalnum() \
        and not label.startswith("-") and not label.endswith("-")


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (the file holding it is mode 600)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_certificate(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def load_private_key(path: Path) -> Any:
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def compute_fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint, colon-separated hex (as chargers and openssl show it)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def server_context(cert_path: Path, key_path: Path, client_ca_path: Path | None = None) -> ssl.SSLContext:
    """The CSMS's TLS context: TLS 1.2 or later; with a client CA, charger certificates it issued are verified.

    A client certificate stays optional at the handshake because vehicles share the port and have
    none; the CSMS refuses a charger without one before its WebSocket opens (csms.py).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_TLS_VERSION
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        raise TlsError(f"charging.tls_key: {key_path} is not the key of {cert_path} ({exc.reason})") from None
    except OSError as exc:
        raise TlsError(f"charging.tls_cert: cannot read {cert_path} or {key_path} ({exc})") from None
    if client_ca_path is not None:
        try:
            context.load_verify_locations(cafile=client_ca_path)
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"charging.tls_client_ca: {client_ca_path} is not a PEM certificate ({exc})") from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(ca_path: Path, cert_path: Path | None = None, key_path: Path | None = None) -> ssl.SSLContext:
    """A charger's or vehicle's TLS context trusting the city CA (and presenting its own certificate, if given)."""
    try:
        context = ssl.create_default_context(cafile=str(ca_path))
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"--ca: {ca_path} is not a readable PEM certificate ({exc})") from None
    context.minimum_version = MIN_TLS_VERSION
    if cert_path is not None:
        try:
            context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"--cert: cannot use {cert_path} with key {key_path} ({exc})") from None
    return context


def connect_options(context: ssl.SSLContext | None) -> dict[str, Any]:
    """Keyword arguments for websockets' connect: none for ws://, the context for wss://."""
    return {} if context is None else {"ssl": context}


def compute_peer_common_name(peer: dict | None) -> str | None:
    """The CN of a verified peer certificate (ssl's getpeercert() dict), or None without one."""
    for entry in (peer or {}).get("subject", ()):
        for name, value in entry:
            if name == "commonName":
                return value
    return None
