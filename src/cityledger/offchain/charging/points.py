"""The CSMS side of one charger's OCPP connection, for OCPP 2.0.1 and for OCPP 1.6-J.

Each class turns the charger's messages into calls on the `Csms` (csms.py), which holds the
sessions; a refused event raises an OCPP error, so the charger gets a CALLERROR and nothing changes.
Calls to the charger (RequestStopTransaction, CostUpdated) are made by tasks the Csms starts, never
awaited inside a handler: the handler runs in the connection's receive loop, which must stay free
to read the charger's answer.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from .accounting import MAX_METER_WH, AccountingError, compute_energy_wh, parse_time

if TYPE_CHECKING:
    from .csms import Csms

LOG = logging.getLogger("cityledger.charging")
HEARTBEAT_INTERVAL_S = 300  # what BootNotification tells chargers
CALL_TIMEOUT_S = 30  # a charger's answer to RequestStopTransaction or CostUpdated; past it the call is logged as failed
MICRO = Decimal(1_000_000)
MAX_SEQ_NO = 2**31 - 1  # a TransactionEvent's seqNo (OCPP integers are 32-bit)


def now_text() -> str:
    """The CSMS's clock in OCPP's timestamp form (only for Boot and Heartbeat answers)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def credits(micro: int) -> float:
    """Micro-credits as credits for OCPP's cost fields (display only: the bill stays an integer).

    Not a Decimal: the ocpp package's JSON encoder rounds a Decimal to one decimal place. The
    float nearest the exact quotient prints back as the same six-decimal text.
    """
    return float(Decimal(micro) / MICRO)


def checked_wh(value: int, field_name: str) -> int:
    """A 1.6 register reading in Wh (meterStart, meterStop) within 0 to MAX_METER_WH."""
    if not 0 <= value <= MAX_METER_WH:
        raise AccountingError(f"{field_name}: expected 0 to {MAX_METER_WH} Wh, got {value}")
    return value


def last_energy_wh(meter_values: list[dict] | None) -> tuple[int, str] | None:
    """The newest energy register reading among meter values, with its timestamp."""
    found = None
    for value in meter_values or []:
        wh = compute_energy_wh(value.get("sampled_value", []))
        if wh is not None:
            found = (wh, value["timestamp"])
    return found


class _Guarded:
    """Keeps the receive loop alive whatever a frame holds, and maps refusals to CALLERRORs."""

    csms: "Csms"

    async def route_message(self, raw_msg: Any) -> None:
        """Route one frame; a frame the ocpp package cannot handle is logged and the loop goes on."""
        try:
            await super().route_message(raw_msg)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - one bad frame must not end the charger's connection
            LOG.warning("%s: frame dropped: %.200r", self.id, raw_msg, exc_info=True)  # type: ignore[attr-defined]

    def refuse(self, error: AccountingError) -> PropertyConstraintViolationError:
        """The CALLERROR for a refused event."""
        LOG.info("%s: refused: %s", self.id, error)  # type: ignore[attr-defined]
        return PropertyConstraintViolationError(description=str(error), details={"cause": str(error)})


class Point201(_Guarded, ChargePoint201):
    """A charger speaking OCPP 2.0.1."""

    def __init__(self, charger_id: str, connection: Any, csms: "Csms") -> None:
        super().__init__(charger_id, connection, response_timeout=CALL_TIMEOUT_S)
        self.csms, self.connection = csms, connection

    @on("BootNotification")
    def on_boot_notification(self, charging_station: dict, reason: str, **_: Any) -> Any:
        """Accept a registered charger's boot."""
        return result201.BootNotification(current_time=now_text(), interval=HEARTBEAT_INTERVAL_S, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        """Answer with the CSMS's time."""
        return result201.Heartbeat(current_time=now_text())

    @on("StatusNotification")
    def on_status_notification(self, **_: Any) -> Any:
        """Connector states are not kept: nothing to bill in them."""
        return result201.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_token: dict, **_: Any) -> Any:
        """Accepted only for a vehicle's Central idToken whose channel has room left."""
        status = self.csms.authorize(id_token.get("id_token", ""), id_token.get("type", ""))
        return result201.Authorize(id_token_info={"status": status})

    @on("TransactionEvent")
    def on_transaction_event(self, event_type: str, timestamp: str, transaction_info: dict, seq_no: int,
                             meter_value: list | None = None, id_token: dict | None = None, **_: Any) -> Any:
        """Started, Updated and Ended move one session; a refused event changes nothing.

        seqNo orders a transaction's events: one at or below the highest applied (an offline queue
        replayed after a reconnect, a resend after a lost answer) is acknowledged and changes nothing.
        """
        session_id = transaction_info["transaction_id"]
        token = id_token.get("id_token") if id_token else None
        try:
            if not 0 <= seq_no <= MAX_SEQ_NO:
                raise AccountingError(f"seq_no: expected 0 to {MAX_SEQ_NO}, got {seq_no}")
            reading = last_energy_wh(meter_value)
            at = parse_time(reading[1] if reading else timestamp, "timestamp")
            wh = reading[0] if reading else None
            if event_type == "Started":
                status = self.csms.open_session(self, session_id, token, wh, at, seq_no=seq_no)
                return result201.TransactionEvent(id_token_info={"status": status})
            session = self.csms.advance(self, session_id, token, wh, at, ended=event_type == "Ended", seq_no=seq_no)
        except AccountingError as error:
            raise self.refuse(error) from None
        info = {"status": self.csms.authorize(token, "Central")} if token else None
        return result201.TransactionEvent(total_cost=credits(session.cost_micro), id_token_info=info)

    async def send_cost(self, session_id: str, cost_micro: int) -> None:
        """Tell the charger's display the running cost."""
        await self.call(call201.CostUpdated(total_cost=credits(cost_micro), transaction_id=session_id))

    async def send_stop(self, session_id: str) -> None:
        """Ask the charger to stop a session."""
        await self.call(call201.RequestStopTransaction(transaction_id=session_id))

    async def send_start(self, id_token: str, evse_id: int, remote_start_id: int) -> str:
        """Ask the charger to start a session for a vehicle's idToken; its answer's status."""
        answer = await self.call(call201.RequestStartTransaction(
            id_token={"id_token": id_token, "type": "Central"}, remote_start_id=remote_start_id, evse_id=evse_id))
        return answer.status

    async def get_variables(self, names: list[tuple[str, str]]) -> dict[str, str | None]:
        """Read configuration variables ("component", "variable"); None for one the charger rejects."""
        answer = await self.call(call201.GetVariables(get_variable_data=[
            {"component": {"name": component}, "variable": {"name": variable}} for component, variable in names]))
        return {f"{r['component']['name']}.{r['variable']['name']}":
                r.get("attribute_value") if r["attribute_status"] == "Accepted" else None
                for r in answer.get_variable_result}


class Point16(_Guarded, ChargePoint16):
    """A charger speaking OCPP 1.6-J (no CostUpdated: the vehicle endpoint shows the running cost)."""

    def __init__(self, charger_id: str, connection: Any, csms: "Csms") -> None:
        super().__init__(charger_id, connection, response_timeout=CALL_TIMEOUT_S)
        self.csms, self.connection = csms, connection

    @on("BootNotification")
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        """Accept a registered charger's boot."""
        return result16.BootNotification(current_time=now_text(), interval=HEARTBEAT_INTERVAL_S, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        """Answer with the CSMS's time."""
        return result16.Heartbeat(current_time=now_text())

    @on("StatusNotification")
    def on_status_notification(self, **_: Any) -> Any:
        """Connector states are not kept."""
        return result16.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_tag: str, **_: Any) -> Any:
        """1.6 has no token type: any known vehicle pseudonym is accepted."""
        return result16.Authorize(id_tag_info={"status": self.csms.authorize(id_tag, "Central")})

    @on("StartTransaction")
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                             **_: Any) -> Any:
        """Open a session; 1.6 leaves the transaction id to the CSMS."""
        start_key = f"{self.id}|{connector_id}|{id_tag}|{meter_start}|{timestamp}"
        known = self.csms.sessions.get(self.csms.starts16.get(start_key, ""))
        if known is not None:
            # The same StartTransaction sent again (its answer was lost): the same transaction.
            status = "Accepted" if known.id_token else "Invalid"
            return result16.StartTransaction(transaction_id=int(known.session_id), id_tag_info={"status": status})
        try:
            wh, at = checked_wh(meter_start, "meter_start"), parse_time(timestamp, "timestamp")
            session_id = self.csms.next_transaction_id()
            status = self.csms.open_session(self, str(session_id), id_tag, wh, at, start_key=start_key)
        except AccountingError as error:
            raise self.refuse(error) from None
        return result16.StartTransaction(transaction_id=session_id, id_tag_info={"status": status})

    @on("MeterValues")
    def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None,
                        **_: Any) -> Any:
        """Move a session's meter forward; readings outside a transaction are not kept."""
        if transaction_id is None:
            return result16.MeterValues()
        try:
            reading = last_energy_wh(meter_value)
            if reading is not None:
                self.csms.advance(self, str(transaction_id), None, reading[0], parse_time(reading[1], "timestamp"))
        except AccountingError as error:
            raise self.refuse(error) from None
        return result16.MeterValues()

    @on("StopTransaction")
    def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, **_: Any) -> Any:
        """End a session at its final reading."""
        try:
            self.csms.advance(self, str(transaction_id), None, checked_wh(meter_stop, "meter_stop"),
                              parse_time(timestamp, "timestamp"), ended=True)
        except AccountingError as error:
            raise self.refuse(error) from None
        return result16.StopTransaction()

    async def send_cost(self, session_id: str, cost_micro: int) -> None:
        """1.6 core has no running-cost message."""

    async def send_stop(self, session_id: str) -> None:
        """Ask the charger to stop a session."""
        await self.call(call16.RemoteStopTransaction(transaction_id=int(session_id)))

    async def send_start(self, id_token: str, evse_id: int, remote_start_id: int) -> str:
        """RemoteStartTransaction for a vehicle's idTag on a connector; its answer's status."""
        answer = await self.call(call16.RemoteStartTransaction(id_tag=id_token, connector_id=evse_id))
        return answer.status

    async def get_variables(self, names: list[tuple[str, str]]) -> dict[str, str | None]:
        """1.6 GetConfiguration for the variables' names (the component is not a 1.6 notion)."""
        answer = await self.call(call16.GetConfiguration(key=[variable for _, variable in names]))
        found = {item["key"]: item.get("value") for item in answer.configuration_key or []}
        return {f"{component}.{variable}": found.get(variable) for component, variable in names}
