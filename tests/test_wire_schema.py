"""The wire contract: the API answers, and the SDK reads, the one set of Structs in cityledger/wire/.

Three checks hold the two sides together: every JSON body in /openapi.json names a wire Struct (and
its schema is that Struct's), the SDK and the API hold the very same classes, and real answers of an
in-process node, read by the SDK's own client, carry exactly the fields of those Structs.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import msgspec
import pytest

import cityledger.api
import cityledger.sdk
import cityledger.wire as wire
from cityledger.api import schemas
from cityledger.core.accounts import account_key
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.modules.bank import Transfer
from cityledger.sdk import AsyncClient, models, verify_state_proof
from cityledger.sdk import client as sdk_client

from test_api_helpers import make_node

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cityledger.api import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WIRE_STRUCTS = {name: kind for name, kind in vars(wire).items()
                if isinstance(kind, type) and issubclass(kind, msgspec.Struct)}
REF = "#/components/schemas/"
# Routes whose 200 answer is not a wire view, and why: Prometheus text, tails bytes, and W3C DID /
# AnonCreds documents whose shapes those standards own (see wire/identity.py).
FREE_FORM = {
    ("get", "/metrics"), ("get", "/issuers/{did}/tails/{tails_hash}"),
    ("get", "/dids/{did}"), ("get", "/schemas/{object_id}"), ("get", "/cred-defs/{object_id}"),
    ("get", "/rev-regs/{object_id}"), ("get", "/status-lists/{object_id}"), ("get", "/trusted-issuers"),
    ("get", "/devices/{did}"), ("post", "/devices/{did}/verify"), ("post", "/verifier/requests"),
    ("post", "/verifier/verify"), ("get", "/issuers"), ("get", "/issuers/{did}"),
    ("post", "/issuers/{did}/offers"), ("post", "/issuers/{did}/credentials"),
    ("post", "/issuers/{did}/revocations"),
}


@pytest.fixture
def node(tmp_path):
    test_node = make_node(tmp_path)
    yield test_node
    test_node.node.store.close()


@pytest.fixture
def openapi(node) -> dict:
    return create_app(node.node).openapi()


def _operations(openapi: dict):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def _ref_name(content: dict) -> str | None:
    schema = content.get("application/json", {}).get("schema")
    if not schema:  # no schema, or FastAPI's {} for a route that declares none
        return None
    assert set(schema) == {"$ref"} and schema["$ref"].startswith(REF), schema
    return schema["$ref"][len(REF):]


def test_every_json_body_in_the_openapi_is_a_wire_struct(openapi):
    components = openapi["components"]["schemas"]
    named = set()
    for method, path, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            name = _ref_name(response.get("content", {}))
            if name is None:
                assert status != "200" or (method, path) in FREE_FORM, f"{method} {path} answers no schema"
                continue
            assert name in WIRE_STRUCTS, f"{method} {path} {status} answers {name}, not a wire Struct"
            named.add(name)
        body = _ref_name(operation.get("requestBody", {}).get("content", {}))
        if body is not None:
            assert body in WIRE_STRUCTS, f"{method} {path} takes {body}, not a wire Struct"
            named.add(body)
    assert {"ErrorBody", "SubmitTxBody", "BlockView", "StateView", "OfferBody", "PublicationView"} <= named
    # The schema published under each name is that Struct's own, not another class of the same name.
    _, expected = msgspec.json.schema_components([WIRE_STRUCTS[name] for name in sorted(named)],
                                                 ref_template=REF + "{name}")
    for name, schema in expected.items():
        assert components[name] == schema, name


def test_free_form_routes_exist(openapi):
    operations = {(method, path) for method, path, _ in _operations(openapi)}
    assert FREE_FORM <= operations, FREE_FORM - operations


def test_the_api_and_the_sdk_hold_the_same_classes():
    for name in schemas.__all__:
        assert getattr(schemas, name) is getattr(wire, name), name
    views = {getattr(models, name) for name in models.__all__}
    assert views <= set(WIRE_STRUCTS.values())
    assert set(sdk_client._READ) <= views
    exported = {getattr(cityledger.sdk, name) for name in cityledger.sdk.__all__}
    structs = {kind for kind in exported if isinstance(kind, type) and issubclass(kind, msgspec.Struct)}
    # The SDK exports REST views and the modules' tx messages (which travel inside signed txs), nothing else.
    assert {kind for kind in structs if not kind.__module__.startswith("cityledger.modules.")} <= views
    assert models.StateValue is schemas.StateView and models.Event is schemas.EventView


@pytest.mark.parametrize("package", [cityledger.api, cityledger.sdk])
def test_no_struct_is_declared_again_in_api_or_sdk(package):
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        declared = [name for name, kind in inspect.getmembers(module, inspect.isclass)
                    if issubclass(kind, msgspec.Struct) and kind.__module__ == module.__name__]
        assert declared == [], f"{info.name} declares {declared}: declare wire shapes in cityledger/wire/"


def test_wire_imports_nothing_of_cityledger():
    allowed = {"__future__", "typing", "msgspec"}
    for source in Path(wire.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                assert {alias.name.split(".")[0] for alias in node.names} <= allowed, source.name
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in allowed, f"{source.name} imports {node.module}"


class Recording(httpx.AsyncBaseTransport):
    """An in-process transport that keeps every answer's path and bytes."""

    def __init__(self, app) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.answers: list[tuple[str, str, int, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        self.answers.append((request.method.lower(), request.url.path, response.status_code, content))
        return httpx.Response(response.status_code, headers=response.headers, content=content)


def _template(openapi: dict, method: str, path: str) -> str:
    """The OpenAPI path of a concrete path: itself if declared (/blocks/latest), else the template it fits."""
    if method in openapi["paths"].get(path, {}):
        return path
    parts = path.strip("/").split("/")
    for template, item in openapi["paths"].items():
        pattern = template.strip("/").split("/")
        if method in item and len(pattern) == len(parts) and all(
                p == q or (p.startswith("{") and p.endswith("}")) for p, q in zip(pattern, parts)):
            return template
    raise AssertionError(f"no route for {method} {path}")


async def _drive_with_sdk(tn, transport) -> None:
    """Call every JSON endpoint of the node through the SDK, in the states its answers can take."""
    dest = PrivateKey.generate().address()
    tx = build_tx(tn.chain_id, [tn.alice], 0, [Transfer(dest, 7)])
    async with AsyncClient("http://node", transport=transport) as client:
        status = await client.status()
        await client.health()
        submitted = await client.submit(tx)
        assert (await client.get_tx(submitted.tx_id)).status == "pending"
        batch = await client.submit_batch([build_tx(tn.chain_id, [tn.alice], 1, [Transfer(dest, 1)]), b"\x00"])
        assert batch.accepted == 1 and batch.rejected == 1
        tn.node.engine.produce_block()
        committed = await client.get_tx(submitted.tx_id)
        assert committed.committed and committed.result.ok and committed.result.events[0].get("amount") == "7"
        assert (await client.wait(submitted.tx_id, timeout_s=1)).committed
        assert (await client.get_tx("ab" * 32)).status == "unknown"
        assert (await client.get_block()).num_txs == 2 and (await client.get_block(0)).height == 0
        assert (await client.get_account(dest)).balance == 8
        assert (await client.query("bank", "supply"))["supply"] > 0
        assert (await client.chain_chart(5)).txs_by_module == {"bank": 2}
        assert "manufactured" in (await client.battery_stages()).stages
        assert (await client.device_kinds()).kinds == {} and (await client.payments_per_day(7)).days == []
        assert (await client.battery_alerts()).alerted == 0 and (await client.recycling()).recyclers == 0
        assert (await client.reward_budgets()).programmes == []
        assert (await client.validators_chart(3)).up == 1
        with pytest.raises(cityledger.sdk.ApiError) as no_csms:  # a node without [charging]
            await client.charging_per_day(7)
        assert no_csms.value.status == 404 and no_csms.value.field == "charging"
        proven = await client.get_state(account_key(dest), prove=True)
        assert verify_state_proof(account_key(dest), proven.value_bytes, proven.proof, proven.app_hash)
        assert (await client.get_state(account_key(dest))).proof is None
        assert await client.get_verified(account_key(b"\x07" * 20)) is None
        with pytest.raises(cityledger.sdk.ApiError) as missing:
            await client.get_block(status.height + 100)
        assert missing.value.status == 404 and missing.value.field == "height"
        await _drive_passports(client, tn)
        await _drive_payments(client, tn)
        await _drive_vaults(client, tn)
        for owned in (client.devices_of, client.channels_of, client.escrows_of, client.data_sets_of,
                      client.enrollments_of):  # what an account holds (tests/test_wallet_ui_queries.py)
            assert (await owned(tn.alice.address())).next is None
        model = await client.get_score_model()
        assert model.model == "driving-score-v1" and len(model.features) == 6 and model.score_one == 128
        await _drive_mobility(client, tn)


async def _drive_mobility(client, tn) -> None:
    """The reward routes of a chain without programmes: an empty list, misses answer ErrorBody (200s field for
    field: tests/test_api_mobility.py)."""
    page = await client.get_programmes()
    assert (page.count, page.items, page.next) == (0, [], None)
    from cityledger.sdk.mobility import claim_check_body
    from mobility_fixtures import stored_claims

    for missing in (client.get_programme(1), client.get_enrollment(1, tn.alice.address()),
                    client.get_claim(1, b"\x01" * 32),
                    client.check_claim(claim_check_body(stored_claims()["good"], tn.alice.address()))):
        with pytest.raises(cityledger.sdk.ApiError) as absent:
            await missing
        assert (absent.value.status, absent.value.field) == (404, "programme_id")


async def _drive_passports(client, tn) -> None:
    """The passport routes: refusals answer ErrorBody, the log its view (200s: tests/test_api_passports.py)."""
    from cityledger.sdk.passports import read_body, sign_log_read, sign_put
    from passport_example import PASSPORT_ID, example

    body = sign_put(tn.chain_id, [tn.bob], "did:city:nobody", 0, example())
    with pytest.raises(cityledger.sdk.ApiError) as refused:
        await client.put_passport(PASSPORT_ID, body)
    assert refused.value.status == 403 and refused.value.field == "operator"
    with pytest.raises(cityledger.sdk.ApiError) as absent:
        await client.get_passport(PASSPORT_ID)
    assert absent.value.status == 404
    with pytest.raises(cityledger.sdk.ApiError) as denied:
        await client.read_passport(PASSPORT_ID, read_body("legitimate", {}, "{}"))
    assert denied.value.status == 403 and denied.value.field == "request"
    auth = sign_log_read(tn.chain_id, [tn.bob], "did:city:nobody", PASSPORT_ID, (await client.status()).height)
    with pytest.raises(cityledger.sdk.ApiError) as unknown:
        await client.get_passport_log(PASSPORT_ID, auth)
    assert unknown.value.status == 403 and unknown.value.field == "reader"
    with pytest.raises(cityledger.sdk.ApiError) as unknown:
        await client.get_passport_alerts(PASSPORT_ID, auth)
    assert unknown.value.status == 403 and unknown.value.field == "reader"
    with pytest.raises(cityledger.sdk.ApiError) as absent:
        await client.get_recycled_content(PASSPORT_ID)
    assert absent.value.status == 404
    from cityledger.wire import ReportBatchBody, SignedReportBody
    report = SignedReportBody(passport=PASSPORT_ID, sequence=1, report={"salt": "00" * 16}, signature="00" * 64)
    # A report for no passport is the sender's error (400) before this node says it has no passport service.
    with pytest.raises(cityledger.sdk.ApiError) as refused:
        await client.post_reports(ReportBatchBody(reports=[report]))
    assert refused.value.status == 400 and "reports[0].passport" in str(refused.value)


async def _drive_payments(client, tn) -> None:
    """The payments routes: a channel and an escrow read back, a voucher checked, misses answer ErrorBody."""
    from cityledger.modules.payments import LockEscrow, OpenChannel, sign_voucher
    from cityledger.wire.payments import VoucherCheckBody

    messages = [OpenChannel(tn.bob.address(), 100, 3, tn.alice.public_key), LockEscrow(tn.bob.address(), 5, 500)]
    await client.submit(build_tx(tn.chain_id, [tn.alice], 2, messages))
    tn.node.engine.produce_block()
    assert (await client.get_channel(1)).deposit == 100 and (await client.get_escrow(1)).amount == 5
    assert (await client.get_locked()).locked == 105
    signature = sign_voucher(tn.alice, tn.chain_id, 1, 10, 1).hex()
    assert (await client.check_voucher(VoucherCheckBody(1, 10, 1, signature))).adds == 10
    for missing in (client.get_policy("did:city:4EyGwS8WxXvuPyDJMx7D5u"), client.get_counterparty(tn.bob.address())):
        with pytest.raises(cityledger.sdk.ApiError) as absent:
            await missing
        assert absent.value.status == 404


async def _drive_vaults(client, tn) -> None:
    """The vault routes of a node without telemetry: 503 ErrorBody (200s: tests/test_vault_service.py)."""
    from cityledger.sdk.vaults import sign_request

    height = (await client.status()).height
    for action, call in (("read", client.vault_read), ("consumer-read", client.vault_consumer_read),
                         ("log", client.vault_log), ("erase", client.vault_erase), ("proof", client.vault_proof)):
        with pytest.raises(cityledger.sdk.ApiError) as off:
            await call(sign_request(tn.chain_id, [tn.bob], action, "city" + "00" * 20, height))
        assert off.value.status == 503 and off.value.field == "vaults"


def test_real_answers_decode_with_the_sdk_field_for_field(node, openapi):
    transport = Recording(create_app(node.node))
    asyncio.run(_drive_with_sdk(node, transport))
    covered = set()
    for method, path, status, content in transport.answers:
        template = _template(openapi, method, path)
        name = _ref_name(openapi["paths"][template][method]["responses"][str(status)]["content"])
        kind = WIRE_STRUCTS[name]
        # Strict: the answer has exactly the Struct's fields, none the SDK would silently drop.
        value = msgspec.json.decode(content, type=kind)
        assert msgspec.to_builtins(value) == msgspec.json.decode(content), f"{method} {path}: {content[:300]!r}"
        covered.add((method, template))
    wanted = {(method, path) for method, path, operation in _operations(openapi)
              if _ref_name(operation["responses"].get("200", {}).get("content", {})) is not None}
    assert covered >= wanted, f"routes the SDK test does not call: {sorted(wanted - covered)}"


@pytest.mark.slow
def test_the_sdk_imports_without_fastapi_or_uvicorn():
    code = ("import sys\n"
            "for name in ('fastapi', 'uvicorn', 'starlette'): sys.modules[name] = None\n"
            "import cityledger.sdk, cityledger.wire\n"
            "assert 'cityledger.api' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
