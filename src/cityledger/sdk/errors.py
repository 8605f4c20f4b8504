"""The SDK's errors: what the node answered, what a proof failed to show, what the keystore refused."""

from __future__ import annotations


class CityLedgerError(Exception):
    """Base of every error the SDK raises."""


class ApiError(CityLedgerError):
    """The node answered with an error: HTTP status, stable code ('<codespace>/<code or name>'), message."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 detail: dict | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.detail = detail or {}


class TxRejected(ApiError):
    """The node refused a transaction; codespace and abci_code are those of its check result."""

    @property
    def codespace(self) -> str:
        return self.detail.get("codespace", "")

    @property
    def abci_code(self) -> int:
        return int(self.detail.get("abci_code", 0))

    @property
    def tx_id(self) -> str:
        return self.detail.get("tx_id", "")


class PublicationError(CityLedgerError):
    """A credential type's publication failed, or was still preparing when the wait ended; `publication` says which."""

    def __init__(self, message: str, publication: dict) -> None:
        super().__init__(message)
        self.publication = publication


class ProofError(CityLedgerError):
    """A state proof does not verify against the app hash it was checked with."""


class KeystoreError(CityLedgerError):
    """A keystore operation failed."""


class KeyNotFound(KeystoreError):
    """No key of that name in the keystore."""


class KeyExists(KeystoreError):
    """A key of that name is already in the keystore."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open the key file (or the file was altered)."""
