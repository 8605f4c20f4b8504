"""EV charging for a vehicle's program: authorise with an operator's CSMS (docs/CHARGING.md).

    answer = authorize_vehicle("ws://csms.example:9000", device_key, wallet, RemoteLedger(client),
                               operator="city…", channel_id=12)
    answer = authorize_vehicle("wss://csms.example:9000", ..., ca_file="city-charging-ca.pem")   # over TLS
    answer["id_token"]   # what chargers send as idToken (type Central); no DID or owner in it
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..offchain.charging.vehicle_auth import AuthorizationRefused

if TYPE_CHECKING:
    from ..core.keys import PrivateKey
    from ..offchain.identity.ledger import LedgerReader
    from ..offchain.identity.wallet import Wallet


def authorize_vehicle(csms_url: str, device_key: "PrivateKey", wallet: "Wallet", ledger: "LedgerReader",
                      operator: str | None = None, channel_id: int | None = None, charger_id: str | None = None,
                      evse_id: int | None = None, ca_file: Path | str | None = None) -> dict[str, Any]:
    """Prove the vehicle's device DID and registration credential, name its channel; the CSMS's grant.

    With `charger_id` (and `evse_id`), the CSMS also asks that charger to start a session for the
    vehicle; the grant's `remote_start` holds the charger's answer. With `ca_file` (the city
    charging CA's certificate), a wss:// CSMS is trusted only if that CA issued its certificate.

    Raises AuthorizationRefused (its `field` names the failed check: device, signature,
    presentation, channel_id, operator) or WalletError if the wallet cannot answer.
    """
    from ..offchain.charging.tls import client_context
    from ..offchain.charging.vehicle_auth import AUTHORIZE_TIMEOUT_S, authorize

    tls = client_context(Path(ca_file)) if ca_file is not None else None
    return asyncio.run(authorize(csms_url, device_key, wallet, ledger, channel_id, operator, charger_id, evse_id,
                                 AUTHORIZE_TIMEOUT_S, tls))


__all__ = ["AuthorizationRefused", "authorize_vehicle"]
