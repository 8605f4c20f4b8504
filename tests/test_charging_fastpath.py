"""fastpath: compiled schema checks and remembered key conversions give the ocpp package's own answers."""

from __future__ import annotations

import copy
import inspect

import pytest
from ocpp import charge_point, messages
from ocpp.exceptions import OCPPError

from cityledger.offchain.charging import fastpath

TX_EVENT = {"eventType": "Updated", "timestamp": "2026-01-01T10:01:00Z", "triggerReason": "MeterValuePeriodic",
            "seqNo": 1, "transactionInfo": {"transactionId": "CP-1-0", "chargingState": "Charging"},
            "idToken": {"idToken": "0123456789abcdef0123", "type": "Central"}, "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": "2026-01-01T10:01:00Z", "sampledValue": [
                {"value": 1000.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]}
SAMPLES = [
    ("2.0.1", messages.MessageType.Call, "TransactionEvent", TX_EVENT),
    ("2.0.1", messages.MessageType.CallResult, "TransactionEvent",
     {"totalCost": 0.35, "idTokenInfo": {"status": "Accepted"}}),
    ("2.0.1", messages.MessageType.Call, "CostUpdated", {"totalCost": 1.25, "transactionId": "CP-1-0"}),
    ("2.0.1", messages.MessageType.Call, "BootNotification",
     {"chargingStation": {"model": "M1", "vendorName": "V"}, "reason": "PowerUp"}),
    ("1.6", messages.MessageType.Call, "StartTransaction",
     {"connectorId": 1, "idTag": "0123456789abcdef0123", "meterStart": 0, "timestamp": "2026-01-01T10:00:00Z"}),
    ("1.6", messages.MessageType.Call, "MeterValues", {"connectorId": 1, "transactionId": 3, "meterValue": [
        {"timestamp": "2026-01-01T10:01:00Z", "sampledValue": [{"value": "1000", "unit": "Wh"}]}]}),
    ("1.6", messages.MessageType.Call, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 21.4}]}}}),
]
WRONG_VALUES = [None, True, -1, 1.5, "x" * 3_000, [], {}, {"unexpected": 1}]


def _variants(payload):
    """The payload itself, each field dropped, replaced by wrong values, and an extra field, at every depth."""
    yield payload
    yield {**payload, "notInTheSchema": 1}
    for key, value in payload.items():
        yield {k: v for k, v in payload.items() if k != key}
        for wrong in WRONG_VALUES:
            yield {**payload, key: wrong}
        inner = value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else value
        if isinstance(inner, dict):
            for changed in _variants(inner):
                yield {**payload, key: [changed] if isinstance(value, list) else changed}


def _outcome(check, version, kind, action, payload):
    message = (messages.Call if kind == messages.MessageType.Call else messages.CallResult)(
        unique_id="1", action=action, payload=copy.deepcopy(payload))
    try:
        check(message, version)
    except OCPPError as error:
        return type(error).__name__, str(error.description)
    return None


@pytest.mark.parametrize("version, kind, action, payload", SAMPLES, ids=[f"{s[0]}-{s[2]}-{s[1]}" for s in SAMPLES])
def test_compiled_checks_give_the_packages_answer_for_good_and_broken_payloads(version, kind, action, payload):
    outcomes = [(_outcome(fastpath.check_payload, version, kind, action, variant),
                 _outcome(messages._validate_payload, version, kind, action, variant))
                for variant in _variants(payload)]
    assert outcomes[0] == (None, None)
    assert sum(ours is not None for ours, _ in outcomes) > len(outcomes) // 2  # the variants are mostly refused
    assert all(ours == theirs for ours, theirs in outcomes)


def test_unknown_action_gets_the_packages_error():
    message = messages.Call(unique_id="1", action="NoSuchAction", payload={})
    with pytest.raises(OCPPError) as ours:
        fastpath.check_payload(message, "2.0.1")
    with pytest.raises(OCPPError) as theirs:
        messages._validate_payload(message, "2.0.1")
    assert type(ours.value) is type(theirs.value)


@pytest.mark.parametrize("payload", [TX_EVENT] + [s[3] for s in SAMPLES] + [
    {"ocppCSMSURL": 1, "evseV2XMode": [{"maxSoCLimit": 2, "SOCLimitReached": {"responderURL": 3}}]},
    {"socLimitReached": True, "csmsRootCertificate": "x", "v2gCertificateChain": [], "a": [[{"bC": 1}]]},
])
def test_key_conversions_equal_the_packages_both_ways(payload, monkeypatch):
    # The package's functions recurse through the module's names: the reference runs on its own code only.
    monkeypatch.setattr(charge_point, "camel_to_snake_case", fastpath._PACKAGE_TO_SNAKE)
    monkeypatch.setattr(charge_point, "snake_to_camel_case", fastpath._PACKAGE_TO_CAMEL)
    snake = fastpath.camel_to_snake_case(payload)
    assert snake == fastpath._PACKAGE_TO_SNAKE(payload)
    assert fastpath.snake_to_camel_case(snake) == fastpath._PACKAGE_TO_CAMEL(snake)
    assert fastpath.camel_to_snake_case(payload) == snake  # the remembered keys give the same again


def test_remembered_signatures_equal_inspects_for_every_handler():
    from cityledger.offchain.charging.points import Point16, Point201

    for cls in (Point201, Point16):
        point = cls("CP-1", None, None)
        for handlers in point.route_map.values():
            handler = handlers["_on_action"]
            assert fastpath.signature(handler) == inspect.signature(handler)
            assert fastpath.signature(handler) == inspect.signature(handler)  # the remembered one
    assert fastpath.signature(len) == inspect.signature(len)


def test_install_points_the_package_at_the_fast_path_and_uninstall_back():
    fastpath.install()
    assert charge_point.validate_payload is fastpath.validate_payload
    assert charge_point.camel_to_snake_case is fastpath.camel_to_snake_case
    assert charge_point.snake_to_camel_case is fastpath.snake_to_camel_case
    assert charge_point.inspect.signature is fastpath.signature
    assert charge_point.inspect.isawaitable is inspect.isawaitable
    fastpath.uninstall()
    assert charge_point.validate_payload is messages.validate_payload and charge_point.inspect is inspect
    assert charge_point.camel_to_snake_case is fastpath._PACKAGE_TO_SNAKE
    fastpath.install()
