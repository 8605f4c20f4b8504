"""The ocpp package's per-message work done once per schema and once per key, with the same results.

The ocpp package (2.1.0) spends most of a CSMS's CPU per message on two things:

- **Schema checks.** Every CALL and CALLRESULT is checked against its JSON schema with the
  pure-Python `jsonschema` Draft4Validator (about 0.4 ms for a TransactionEvent) on a thread of the
  default executor (a thread hop per message): about 50 checks per 10-reading session on each side.
  Here the same schema is compiled once by jsonschema_rs (a few µs per check) and checked inline. A
  payload the compiled schema accepts is accepted (both are Draft 4 validators, formats unchecked as
  in the package); anything else (a refusal, an action without a schema, a value the compiled
  validator cannot read) goes to the package's own `_validate_payload`, which raises exactly the
  CALLERROR it always raised. The 1.6 actions whose floats the package re-reads as Decimal always
  take the package's own path.
- **camelCase <-> snake_case.** Each key of each payload goes through two or three regular
  expressions, every message. A key's conversion depends on the key alone, so it is done by the
  package's own functions once per distinct key and remembered.
- **Handler signatures.** For every CALL it handles, the package asks `inspect.signature` of the
  handler whether it takes `call_unique_id` (about a tenth of a CSMS's CPU). A handler function's
  signature does not change, so it is computed once per function and remembered.

`install()` points the package's ChargePoint at these; the charge points of the CSMS and of the
simulators then run every check they ran before.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Callable

import jsonschema_rs
from ocpp import charge_point, messages

MAX_COMPILED_SCHEMAS = 1_024  # (message type, action, version); OCPP 1.6 + 2.0.1 + 2.1 have about 600 schemas
MAX_CACHED_KEYS = 10_000  # distinct payload keys remembered per direction; past it keys are converted afresh
MAX_CACHED_SIGNATURES = 1_000  # handler functions whose signature is remembered; past it computed afresh
# The package parses these with Decimal floats first (messages._validate_payload): its path only.
_DECIMAL_ACTIONS = {("1.6", messages.MessageType.Call, "SetChargingProfile"),
                    ("1.6", messages.MessageType.Call, "RemoteStartTransaction"),
                    ("1.6", messages.MessageType.CallResult, "GetCompositeSchedule")}
_PACKAGE_TO_SNAKE = charge_point.camel_to_snake_case
_PACKAGE_TO_CAMEL = charge_point.snake_to_camel_case
_compiled: dict[tuple[int, str, str], Any] = {}
_snake_keys: dict[str, str] = {}
_camel_keys: dict[str, str] = {}
_signatures: dict[tuple[Any, bool], inspect.Signature] = {}


def _compiled_for(message: Any, ocpp_version: str) -> Any:
    """The compiled validator of a message's schema, or None where only the package's path applies."""
    key = (message.message_type_id, message.action, ocpp_version)
    if key not in _compiled:
        if (ocpp_version, message.message_type_id, message.action) in _DECIMAL_ACTIONS:
            return None
        schema = messages.get_validator(message.message_type_id, message.action, ocpp_version).schema
        if len(_compiled) >= MAX_COMPILED_SCHEMAS:
            return None
        _compiled[key] = jsonschema_rs.Draft4Validator(schema, validate_formats=False)
    return _compiled[key]


def check_payload(message: Any, ocpp_version: str) -> None:
    """Raise the ocpp package's error for a payload its schema refuses; return if it is valid."""
    try:
        known = type(message) in (messages.Call, messages.CallResult)
        compiled = _compiled_for(message, ocpp_version) if known else None
        if compiled is not None and compiled.is_valid(message.payload):
            return
    except Exception:  # noqa: BLE001 - whatever the fast path cannot decide, the package's own path decides
        pass
    messages._validate_payload(message, ocpp_version)


async def validate_payload(message: Any, ocpp_version: str) -> None:
    """The package's `validate_payload`, inline: a compiled check is cheaper than a thread hop."""
    check_payload(message, ocpp_version)


def _convert(data: Any, keys: dict[str, str], package: Callable[[Any], Any]) -> Any:
    """`package(data)` (a key conversion of nested dicts and lists), each key converted once."""
    if isinstance(data, dict):
        converted = {}
        for key, value in data.items():
            new = keys.get(key)
            if new is None:
                new = next(iter(package({key: None})))
                if len(keys) < MAX_CACHED_KEYS:
                    keys[key] = new
            converted[new] = _convert(value, keys, package)
        return converted
    if isinstance(data, list):
        return [_convert(value, keys, package) for value in data]
    return data


def camel_to_snake_case(data: Any) -> Any:
    """The package's camel_to_snake_case, each distinct key converted once."""
    return _convert(data, _snake_keys, _PACKAGE_TO_SNAKE)


def snake_to_camel_case(data: Any) -> Any:
    """The package's snake_to_camel_case, each distinct key converted once."""
    return _convert(data, _camel_keys, _PACKAGE_TO_CAMEL)


def signature(handler: Any) -> inspect.Signature:
    """`inspect.signature(handler)`, computed once per function (bound or not)."""
    key = (getattr(handler, "__func__", handler), isinstance(handler, types.MethodType))
    found = _signatures.get(key)
    if found is None:
        found = inspect.signature(handler)
        if len(_signatures) < MAX_CACHED_SIGNATURES:
            _signatures[key] = found
    return found


class _Inspect(types.SimpleNamespace):
    """The `inspect` module as the package's charge_point sees it, with `signature` remembered."""

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


_INSPECT = _Inspect(signature=signature)


def install() -> None:
    """Make every ocpp ChargePoint of this process use these (idempotent)."""
    charge_point.validate_payload = validate_payload
    charge_point.camel_to_snake_case = camel_to_snake_case
    charge_point.snake_to_camel_case = snake_to_camel_case
    charge_point.inspect = _INSPECT


def uninstall() -> None:
    """Give the package its own functions back (a benchmark's baseline runs them)."""
    charge_point.validate_payload = messages.validate_payload
    charge_point.camel_to_snake_case = _PACKAGE_TO_SNAKE
    charge_point.snake_to_camel_case = _PACKAGE_TO_CAMEL
    charge_point.inspect = inspect
