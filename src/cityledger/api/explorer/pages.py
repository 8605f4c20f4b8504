"""The explorer's pages: server-rendered HTML over the node's store and its module queries.

Every page reads through NodeService (blocks and txs from the store by height or tx id, accounts
and module records through ABCI queries), so it shows ledger content only. Pages are not in the
OpenAPI document: the JSON behind them is the REST API's own (/blocks, /txs, /query, /status).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import msgspec
from fastapi import APIRouter, FastAPI, Query
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from ...core.hashing import compute_tx_id
from ..errors import ApiError
from ..service import NodeService
from .sections import MAX_ID_CHARS, UUID4, Section, available, find

HERE = Path(__file__).resolve().parent
PAGE_BLOCKS = 20  # blocks per page of the block list (one indexed read each, by height)
MAX_SEARCH_CHARS = 200  # a longer search text is answered "nothing matches" without a lookup
POLL_MS = 1000  # how often the block list asks /status for a new height (explorer.js)
# Pages load nothing from another origin: scripts, styles and data are the node's own.
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
_ADDRESS = re.compile(r"city[0-9a-f]{40}")
_PASSPORT = re.compile(UUID4)
PASSPORT_FIELDS = ("passport", "predecessor", "successor")  # fields whose value is a battery passport id
_TX_ID = re.compile(r"[0-9a-fA-F]{64}")


def link_for(value: Any, field: str = "") -> str | None:
    """The explorer page of a value that names a ledger object (an address, a DID, a passport field), if any."""
    if not isinstance(value, str):
        return None
    if field in PASSPORT_FIELDS and _PASSPORT.fullmatch(value):
        return f"/explorer/passports?id={value}"
    if _ADDRESS.fullmatch(value):
        return f"/explorer/account/{value}"
    if value.startswith("did:city:") and len(value) <= MAX_ID_CHARS:
        return f"/explorer/dids?id={quote(value, safe=':')}"
    return None


def show_time(time_ns: int) -> str:
    """A block time as UTC ISO 8601 to the second (display only)."""
    return datetime.fromtimestamp(time_ns // 1_000_000_000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(link_for=link_for, show_time=show_time)
    return env


class Pages:
    """Renders the explorer's templates for one node."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.env = make_env()
        self.sections = available(module.name for module in service.node.app.modules)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.update(sections=self.sections, chain_id=self.service.node.app.chain_id)
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})

    def error(self, exc: ApiError) -> HTMLResponse:
        return self.render("error.html", exc.status, title="Not shown", code=exc.detail.code, message=exc.detail.message)

    def guarded(self, page: Callable[[], Response]) -> Response:
        """The page, or the error page naming the field when the service refuses the input."""
        try:
            return page()
        except ApiError as exc:
            return self.error(exc)

    def block_rows(self, top: int) -> list[dict]:
        """Up to PAGE_BLOCKS blocks from height `top` down: one indexed store read per block."""
        store, rows = self.service.node.store, []
        for height in range(top, max(top - PAGE_BLOCKS, 0), -1):
            block = store.get_block(height)
            if block is not None:
                rows.append({"height": height, "time_ns": block.time_ns, "hash": block.hash.hex(),
                             "tx_ids": [compute_tx_id(tx).hex() for tx in block.txs]})
        return rows

    def home(self, before: int | None) -> Response:
        latest = self.service.node.store.last_height()
        top = latest if before is None else min(before - 1, latest)
        rows = self.block_rows(top)
        older = rows[-1]["height"] if rows and rows[-1]["height"] > 1 else None
        return self.render("home.html", title="Blocks", status_view=msgspec.to_builtins(self.service.status()),
                           rows=rows, live=before is None, older=older, latest=latest, poll_ms=POLL_MS,
                           page_blocks=PAGE_BLOCKS)

    def block(self, height: int) -> Response:
        view = msgspec.to_builtins(self.service.block(height))
        pairs = list(zip(view["tx_ids"], view["results"]))
        return self.render("block.html", title=f"Block {height}", block=view, pairs=pairs)

    def tx(self, text: str) -> Response:
        if not _TX_ID.fullmatch(text):
            raise ApiError(400, "api/invalid_param", f"tx_id: expected 64 hex digits, got {text[:80]!r}")
        view = msgspec.to_builtins(self.service.tx_status(bytes.fromhex(text), with_tx=True))
        return self.render("tx.html", title=f"Transaction {text[:12]}…", tx=view)

    def account(self, address: str) -> Response:
        view = msgspec.to_builtins(self.service.account(address))
        return self.render("account.html", title=f"Account {view['address'][:14]}…", account=view)

    def section(self, section: Section, key: str | None, before: int | None = None,
                after: str | None = None) -> Response:
        result, asked = None, key is not None or not section.arg
        if key is not None and (not key.strip() or len(key) > MAX_ID_CHARS):
            raise ApiError(400, "api/invalid_param",
                           f"id: expected 1 to {MAX_ID_CHARS} characters, got {len(key)}")
        if asked:
            args = {section.arg: key.strip()} if section.arg and key is not None else {}
            result = section.public(self.service.query(section.module, section.query, args).result)
        elif section.listing:  # no id: a page of records, paged on with ?before= or ?after=
            cursor = before if section.paged_by == "before" else after
            args = {} if cursor is None else {section.paged_by: str(cursor)}
            result = self.service.query(section.module, section.listing, args).result
        listed = key is None and isinstance(result, dict)
        following = result.get("before" if section.paged_by == "before" else "next") if listed else None
        return self.render("section.html", title=section.title, section=section, key=key or "", result=result,
                           following=following)

    def search(self, text: str) -> Response:
        text = text.strip()
        target = self.target(text) if 0 < len(text) <= MAX_SEARCH_CHARS else None
        if target is not None:
            return RedirectResponse(target, status_code=303)
        # 200: an empty search result is an answer, not a missing page.
        return self.render("search.html", title="Nothing found", query=text[:MAX_SEARCH_CHARS])

    def target(self, text: str) -> str | None:
        """The page a search text names: a height, a tx id, an address, then each section's ids."""
        if text.isascii() and text.isdigit() and len(text) <= 18:
            return f"/explorer/block/{int(text)}"
        if _TX_ID.fullmatch(text):
            return f"/explorer/tx/{text.lower()}"
        if _ADDRESS.fullmatch(text.lower()):
            return f"/explorer/account/{text.lower()}"
        for section in self.sections:
            if section.recognises(text):
                return f"/explorer/{section.slug}?id={quote(text, safe=':')}"
        return None


def include_pages(app: FastAPI, service: NodeService) -> Pages:
    """Serve the explorer at / and /explorer/..., with its CSS and JS under /explorer/static."""
    pages = Pages(service)
    app.mount("/explorer/static", StaticFiles(directory=HERE / "static"), name="explorer-static")
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def home(before: int | None = Query(None, ge=1, le=2**63 - 1)) -> Response:
        return pages.guarded(lambda: pages.home(before))

    @router.get("/explorer/block/{height}", response_class=HTMLResponse)
    def block(height: int) -> Response:
        return pages.guarded(lambda: pages.block(height))

    @router.get("/explorer/tx/{tx_id}", response_class=HTMLResponse)
    def tx(tx_id: str) -> Response:
        return pages.guarded(lambda: pages.tx(tx_id))

    @router.get("/explorer/account/{address}", response_class=HTMLResponse)
    def account(address: str) -> Response:
        return pages.guarded(lambda: pages.account(address))

    @router.get("/search", response_class=HTMLResponse)
    def search(q: str = "") -> Response:
        return pages.guarded(lambda: pages.search(q))

    @router.get("/explorer/{slug}", response_class=HTMLResponse)
    def section(slug: str, id: str | None = None,  # noqa: A002 - the query parameter's name
                before: int | None = Query(None, ge=1, le=2**63 - 1), after: str | None = None) -> Response:
        found = find(pages.sections, slug)
        if found is None:
            return pages.error(ApiError(404, "api/not_found", f"slug: no explorer section {slug[:80]!r}"))
        return pages.guarded(lambda: pages.section(found, id, before, after))

    app.include_router(router)
    return pages
