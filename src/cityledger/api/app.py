"""create_app: the FastAPI application over one node."""

from __future__ import annotations

from contextlib import asynccontextmanager

import msgspec
from fastapi import FastAPI

from .docs import include_docs
from .errors import install_handlers
from .explorer import include_explorer
from .routes.batteries import include_batteries
from .routes.mobility import include_mobility
from .routes.owned import include_owned
from .routes.identity import include_identity
from .routes.payments import include_payments
from .routes.vaults import include_vaults
from .metrics import ApiMetrics, read_engine
from .middleware import BodyBudget, BoundedHeaders, CatchAll, HeadAsGet
from .protocols import NodeLike
from .routes.ledger import chain_router, node_router, tx_router
from .schemas import REQUEST_TYPES, RESPONSE_TYPES
from .service import VERSION, NodeService
from .waiting import BlockWatch

DESCRIPTION = """The REST API of a cityledger node.

Transactions are submitted as canonical bytes (base64 or hex), signed by the SDK or the CLI. Byte
strings in responses are lowercase hex; addresses are `city` + 40 hex digits; amounts are integer
micro-credits. Every error is `{"error": {"code": "<codespace>/<code or name>", "message": ...}}`,
its message starting with the name of the bad field.
"""


def create_app(node: NodeLike, *, manage_node: bool = False) -> FastAPI:
    """The API of `node`; with manage_node, the app's lifespan starts and stops the node's block loop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_node:
            node.start()
        try:
            yield
        finally:
            if manage_node:
                node.stop()

    metrics = ApiMetrics(lambda: read_engine(node))
    service = NodeService(node, metrics)
    # /docs and /redoc are served by include_docs from an installed package (no CDN: nodes run offline).
    app = FastAPI(title="cityledger", version=VERSION, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = service
    install_handlers(app)
    app.add_middleware(BodyBudget)
    app.add_middleware(CatchAll)
    app.add_middleware(HeadAsGet)  # added after CatchAll, so outside it: a 500 to a HEAD loses its body too
    app.add_middleware(BoundedHeaders)
    app.include_router(tx_router(service, BlockWatch(node.store.last_height)))
    app.include_router(chain_router(service))
    app.include_router(node_router(service))
    include_identity(app, node)
    include_batteries(app, node, app.state.identity.verifier)
    include_payments(app)
    include_vaults(app, node)
    include_mobility(app)
    include_owned(app)
    include_docs(app)
    include_explorer(app, service)
    _merge_schemas(app)
    return app


_ERROR_RESPONSE = {"description": "Invalid input, named in error.field",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


def _error(description: str) -> dict:
    return {**_ERROR_RESPONSE, "description": description}


# Answers any route may give (docs/LIMITS.md), and those of routes that read a body.
_ANY_ROUTE = {"431": _error("Headers too large"), "500": _error("Internal error (generic message and request id)")}
_BODY_ROUTE = {"408": _error("Body not received in time"), "413": _error("Body too large"),
               "415": _error("Content-Type is not JSON"), "503": _error("Too many bodies in flight; retry")}


def _merge_schemas(app: FastAPI) -> None:
    """Add the msgspec Structs' JSON Schemas to FastAPI's OpenAPI document."""
    _, components = msgspec.json.schema_components(RESPONSE_TYPES + REQUEST_TYPES,
                                                   ref_template="#/components/schemas/{name}")
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(components)
            # Invalid parameters are answered 400 with an ErrorBody, never FastAPI's default 422.
            for operation in (op for item in schema["paths"].values() for op in item.values()):
                responses = operation.setdefault("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", _ERROR_RESPONSE)
                extra = {**_ANY_ROUTE, **(_BODY_ROUTE if "requestBody" in operation else {})}
                for status, response in extra.items():
                    responses.setdefault(status, response)
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
