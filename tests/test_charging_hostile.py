"""Hostile values at the CSMS's new surface: the /authorize endpoint and TransactionEvent's seqNo handling.

Each bad frame gets a clear refusal naming the field (or the connection is closed for a frame the
WebSocket layer refuses), nothing is admitted, and the CSMS goes on serving chargers.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpers import CHAIN_ID, make_chain
from test_charging import GUARD_S, Station201, World, event
from cityledger.offchain.charging.vehicle_auth import MAX_AUTHORIZE_FRAME_BYTES, VehicleAuthority
from cityledger.offchain.identity import LocalLedger

DID = "did:city:" + "1" * 22


def _frame(**changes) -> str:
    body = {"type": "authorize", "device": DID, "signature": "00" * 64, "presentation": "{}", "channel_id": 1}
    body.update(changes)
    return json.dumps(body)


HOSTILE = {
    "newline in the DID": (_frame(device=DID + "\nX-Injected: 1"), "device"),
    "a huge DID": (_frame(device="did:city:" + "1" * 5_000), "device"),
    "a DID that is a number": (_frame(device=12), "device"),
    "a negative channel id": (_frame(channel_id=-1), "channel_id"),
    "a huge channel id": (_frame(channel_id=10**40), "channel_id"),
    "a float channel id": (_frame(channel_id=1.5), "channel_id"),
    "a boolean channel id": (_frame(channel_id=True), "channel_id"),
    "a signature that is not hex": (_frame(signature="zz"), "signature"),
    "a huge signature": (_frame(signature="00" * 4_000), "signature"),
    "a presentation that is an object": (_frame(presentation={"a": 1}), "presentation"),
    "deep nesting": ('{"type": "authorize", "device": ' + "[" * 50_000 + "]" * 50_000 + "}", "frame"),
    "not an object": (json.dumps([1, 2, 3]), "type"),
    "another type": (json.dumps({"type": "hello"}), "type"),
    "not JSON": ("this is not json", "frame"),
    "invalid UTF-8 (binary frame)": (b'{"type": "authorize", "device": "\xff\xfe"}', "frame"),
    "newline in the charger id": (_frame(charger_id="CP-1\nX"), "charger_id"),
    "a charger id that is a list": (_frame(charger_id=["CP-1"]), "charger_id"),
    "a huge EVSE id": (_frame(evse_id=10**20), "evse_id"),
    "a negative EVSE id": (_frame(evse_id=-1), "evse_id"),
    "an unregistered device": (_frame(), "device"),
}


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    return LocalLedger(make_chain(tmp_path_factory.mktemp("hostile")).app)


def test_hostile_authorize_frames_are_refused_naming_the_field_and_the_csms_goes_on(ledger):
    async def scenario():
        async with World() as world:
            world.csms.authority = VehicleAuthority(ledger, CHAIN_ID, b"\x01" * 20, b"s" * 32)
            answers = {}
            for name, (frame, _) in HOSTILE.items():
                async with connect(f"{world.base}/authorize", max_size=2**22) as ws:
                    await ws.recv()
                    await ws.send(frame)
                    answers[name] = json.loads(await asyncio.wait_for(ws.recv(), GUARD_S))
            async with connect(f"{world.base}/authorize", max_size=2**22) as ws:
                await ws.recv()
                await ws.send("x" * (MAX_AUTHORIZE_FRAME_BYTES + 1))  # over the frame limit: closed (1009)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), GUARD_S)
            async with world.charger(Station201, "ocpp2.0.1") as ws:  # the CSMS goes on
                station = Station201("CP-1", ws)
                loop = asyncio.create_task(station.start())
                beat = await station.call(call201.Heartbeat())
                loop.cancel()
            return world, answers, closed.value, beat

    world, answers, closed, beat = asyncio.run(scenario())
    for name, (_, field) in HOSTILE.items():
        assert answers[name]["type"] == "refused", name
        assert answers[name]["field"] == field, (name, answers[name])
        assert "\n" not in answers[name]["error"] and len(answers[name]["error"]) < 400, name
    assert closed.rcvd.code == 1009
    assert world.csms.books.keys() == {world.id_token} and beat.current_time


def test_authorize_path_is_not_found_when_the_csms_has_no_authority():
    async def scenario():
        async with World() as world:
            from websockets.exceptions import InvalidStatus

            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"{world.base}/authorize"):
                    pass
            return refused.value.response.status_code

    assert asyncio.run(scenario()) == 404


async def answer_to(ws, unique_id: str) -> list:
    """The CSMS's answer to our call `unique_id` (its own calls, such as CostUpdated, are skipped)."""
    async with asyncio.timeout(GUARD_S):
        while True:
            message = json.loads(await ws.recv())
            if message[0] in (3, 4) and message[1] == unique_id:
                return message


def test_hostile_transaction_events_get_callerrors_and_the_session_goes_on():
    async def scenario():
        async with World() as world, world.charger(None, "ocpp2.0.1") as ws:
            answers = []
            started = event("Started", 0, 1_000, 0, world.id_token)
            frames = [
                [2, "h-1", "TransactionEvent", {"eventType": "Updated", "timestamp": "2026-01-01T10:01:00Z",
                                                "triggerReason": "MeterValuePeriodic", "seqNo": 10**30,
                                                "transactionInfo": {"transactionId": "tx-1"}}],
                [2, "h-2", "TransactionEvent", {"eventType": "Updated", "timestamp": "2026-01-01T10:01:00Z",
                                                "triggerReason": "MeterValuePeriodic", "seqNo": -5,
                                                "transactionInfo": {"transactionId": "tx-1"}}],
                [2, "h-3", "TransactionEvent", {"eventType": "Updated", "timestamp": "2026-01-01T10:01:00\nZ",
                                                "triggerReason": "MeterValuePeriodic", "seqNo": 1,
                                                "transactionInfo": {"transactionId": "tx-1"}}],
                [2, "h-4", "TransactionEvent", {"eventType": "Updated", "timestamp": "2026-01-01T10:01:00Z",
                                                "triggerReason": "MeterValuePeriodic", "seqNo": 1,
                                                "transactionInfo": {"transactionId": "tx-1\n"}}],
                [2, "h-5", "TransactionEvent", {"eventType": "Updated", "timestamp": "2026-01-01T10:01:00Z",
                                                "triggerReason": "MeterValuePeriodic", "seqNo": "1",
                                                "transactionInfo": {"transactionId": "tx-1"}}],
            ]
            await ws.send(json.dumps([2, "s-0", "TransactionEvent", {
                "eventType": "Started", "timestamp": started.timestamp, "triggerReason": "Authorized", "seqNo": 0,
                "transactionInfo": {"transactionId": "tx-1"},
                "idToken": {"idToken": world.id_token, "type": "Central"},
                "meterValue": [{"timestamp": started.timestamp, "sampledValue": [{"value": 1000}]}]}]))
            assert (await answer_to(ws, "s-0"))[0] == 3
            for frame in frames:
                await ws.send(json.dumps(frame))
                answers.append(await answer_to(ws, frame[1]))
            await ws.send(b"\xff\xfe\x00")  # invalid UTF-8 in a binary frame: dropped
            await ws.send(json.dumps([2, "ok", "Heartbeat", {}]))
            fine = await answer_to(ws, "ok")
            return world, answers, fine

    world, answers, fine = asyncio.run(scenario())
    assert [a[0] for a in answers] == [4] * 5  # a CALLERROR each
    assert "seq_no" in answers[0][3] and "seq_no" in answers[1][3] and "timestamp" in answers[2][3]
    assert "transaction_id" in answers[3][3]
    assert fine[:2] == [3, "ok"]
    session = world.csms.sessions["tx-1"]
    assert (session.seq_no, session.energy_wh, session.ended) == (0, 0, False)


def test_hostile_ocpp16_values_get_callerrors_and_the_session_goes_on():
    async def scenario():
        async with World() as world, world.charger(None, "ocpp1.6") as ws:
            start = [2, "s", "StartTransaction", {"connectorId": 1, "idTag": world.id_token, "meterStart": 100,
                                                  "timestamp": "2026-01-01T10:00:00Z"}]
            await ws.send(json.dumps(start))
            tx = (await answer_to(ws, "s"))[2]["transactionId"]
            frames = [
                [2, "h-1", "StartTransaction", {"connectorId": 1, "idTag": "x", "meterStart": 10**30,
                                                "timestamp": "2026-01-01T10:00:00Z"}],
                [2, "h-2", "StartTransaction", {"connectorId": 1, "idTag": "x", "meterStart": -1,
                                                "timestamp": "2026-01-01T10:00:00Z"}],
                [2, "h-3", "StopTransaction", {"meterStop": 10**30, "timestamp": "2026-01-01T10:05:00Z",
                                               "transactionId": tx}],
                [2, "h-4", "StopTransaction", {"meterStop": -5, "timestamp": "2026-01-01T10:05:00Z",
                                               "transactionId": tx}],
                [2, "h-5", "StopTransaction", {"meterStop": 500, "timestamp": "2026-01-01T10:05:00Z",
                                               "transactionId": 10**30}],
                [2, "h-6", "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
                    {"timestamp": "2026-01-01T10:01:00Z", "sampledValue": [{"value": "1e400"}]}]}],
                [2, "h-7", "StopTransaction", {"meterStop": 500, "timestamp": "2026-01-01\nT10:05:00Z",
                                               "transactionId": tx}],
            ]
            answers = []
            for frame in frames:
                await ws.send(json.dumps(frame))
                answers.append(await answer_to(ws, frame[1]))
            stop = [2, "ok", "StopTransaction", {"meterStop": 600, "timestamp": "2026-01-01T10:06:00Z",
                                                 "transactionId": tx}]
            await ws.send(json.dumps(stop))
            fine = await answer_to(ws, "ok")
            return world, answers, fine, str(tx)

    world, answers, fine, tx = asyncio.run(scenario())
    assert [a[0] for a in answers] == [4] * 7, answers
    assert ["meter_start" in answers[0][3], "meter_start" in answers[1][3], "meter_stop" in answers[2][3],
            "meter_stop" in answers[3][3], "transaction_id" in answers[4][3], "value" in answers[5][3],
            "timestamp" in answers[6][3]] == [True] * 7
    assert fine[:2] == [3, "ok"]
    assert world.csms.sessions[tx].energy_wh == 500 and world.csms.sessions[tx].ended
    assert len(world.csms.sessions) == 1  # the refused starts opened nothing
