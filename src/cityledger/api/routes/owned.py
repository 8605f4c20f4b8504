"""What one pseudonymous account holds, over REST (a resident's own page reads these, docs/PORTAL.md):

    GET /accounts/{address}/devices?after=       devices it owns or is offered      (/devices/owned)
    GET /accounts/{address}/channels?after=      channels it pays into or from      (/payments/channels_of)
    GET /accounts/{address}/escrows?after=       open escrows it locked or receives (/payments/escrows_of)
    GET /accounts/{address}/data-sets?after=     data sets it owns                  (/consent/data_sets_of)
    GET /accounts/{address}/enrollments?after=   its reward enrollments             (/mobility/enrollments_of)

Each answers a page of the latest state: at most MAX_OWNED_RESULTS items and `next`, the `after` of
the following page (modules/paging.py). Everything here is ledger content: accounts are pseudonyms.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.responses import Response

from ...wire.owned import OWNED_VIEW_TYPES
from ..codec import json_response
from ..errors import invalid_param, not_found
from .common import add_schemas

# path segment -> (module, query, the query's argument naming the account, the answer's view)
OWNED_ROUTES = {
    "devices": ("devices", "owned", "owner", "OwnedDevicesView"),
    "channels": ("payments", "channels_of", "account", "OwnedChannelsView"),
    "escrows": ("payments", "escrows_of", "account", "OwnedEscrowsView"),
    "data-sets": ("consent", "data_sets_of", "owner", "OwnedDataSetsView"),
    "enrollments": ("mobility", "enrollments_of", "account", "OwnedEnrollmentsView"),
}


def _doc(view: str) -> dict:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {200: {"description": "OK", "content": {"application/json": {"schema": {
                "$ref": f"#/components/schemas/{view}"}}}},
            400: {"description": "Invalid input, named in error.field", "content": error},
            404: {"description": "This node runs no such module", "content": error}}


def include_owned(app: FastAPI) -> None:
    """Add the owner-list routes (they read the node's own module queries) and their schemas."""
    router = APIRouter(tags=["accounts"])
    for segment, (module, name, argument, view) in OWNED_ROUTES.items():
        router.add_api_route(f"/accounts/{{address}}/{segment}", _handler(app, module, name, argument),
                             methods=["GET"], summary=f"The {segment.replace('-', ' ')} of an account",
                             responses=_doc(view), name=f"owned_{name}")
    app.include_router(router)
    add_schemas(app, OWNED_VIEW_TYPES)


def _handler(app: FastAPI, module: str, name: str, argument: str):
    """The route of one owner query: the account from the path, the cursor from ?after=."""

    def owned(address: str, after: str = "") -> Response:
        reader = app.state.identity
        try:
            query = reader.module_query(module, name)
        except LookupError as exc:
            raise not_found(str(exc).strip("'\"")) from None
        try:  # the latest committed state: a scan needs the store's ordered keys
            return json_response(query(reader.node.store, {argument: address, "after": after}))
        except ValueError as exc:  # the query names its own argument; this route calls it 'address'
            message = str(exc)
            raise invalid_param("address" + message[len(argument):] if message.startswith(argument + ":")
                                else message) from None

    return owned
