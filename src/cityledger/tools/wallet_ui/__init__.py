"""`cityledger wallet ui`: a resident's own page, served from the resident's machine on loopback only.

The page is built from the local encrypted wallet and the node's public API; the node never sees
the wallet or its passphrase. Who may use it: only a browser that opened the URL the command
printed (a per-session token, kept as an HttpOnly SameSite=Strict cookie), only under a loopback
Host (no DNS rebinding), never from another origin (a request with a foreign Origin is refused),
and every form carries a per-session CSRF token. The passphrase is typed into the page and unlocks
the wallet in this process's memory until "Lock" or exit.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ...api.explorer.pages import HERE as EXPLORER_HERE
from ...offchain.identity import Wallet
from ...offchain.identity.wallet import WalletError
from ...sdk import ApiError, IdentityClient
from .holdings import MAX_UI_PAGES, read_holdings

HERE = Path(__file__).resolve().parent
COOKIE = "cityledger_wallet"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
MAX_FORM_BYTES = 4_096  # the unlock and lock forms: a passphrase and a CSRF token
CSP = "default-src 'none'; style-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


class WalletSession:
    """The one session of a running `wallet ui`: its tokens and, once unlocked, the open wallet."""

    def __init__(self, wallet_path: Path, node: IdentityClient, port: int, tails_cache: Path) -> None:
        self.wallet_path, self.node, self.port, self.tails_cache = wallet_path, node, port, tails_cache
        self.token = secrets.token_urlsafe(32)  # in the URL the command prints, then in the cookie
        self.csrf = secrets.token_urlsafe(32)
        self.wallet: Wallet | None = None

    def origins(self) -> set[str]:
        return {f"http://{host}:{self.port}" for host in LOOPBACK_HOSTS}

    def refusal(self, request: Request, need_cookie: bool = True) -> Response | None:
        """403 for a foreign Host or Origin, 401 without the session's cookie; None when allowed."""
        host = request.headers.get("host", "")
        if host not in {f"{name}:{self.port}" for name in LOOPBACK_HOSTS}:
            return HTMLResponse("host: this page answers only on loopback", status_code=403)
        origin = request.headers.get("origin")
        if origin is not None and origin not in self.origins():
            return HTMLResponse("origin: requests from another site are refused", status_code=403)
        if request.method == "POST" and origin is None:
            return HTMLResponse("origin: a form must come from this page", status_code=403)
        if need_cookie and not same_secret(request.cookies.get(COOKIE, ""), self.token):
            return HTMLResponse("token: open the URL that `cityledger wallet ui` printed", status_code=401)
        return None

    def credentials(self) -> list[dict[str, Any]]:
        """The held credentials, each with its revocation status read from the ledger now."""
        assert self.wallet is not None
        refs, rows = self.wallet.revocation_refs(), []
        for local_id, item in sorted(self.wallet.credentials().items()):
            ref, status = refs.get(local_id), "not revocable"
            if ref is not None:
                bits = self.node.get_status_list(ref[0])["status_list"]["revocationList"]
                status = "revoked" if bits[ref[1]] else "valid"
            rows.append({"id": local_id, "type": item["type"], "attributes": dict(sorted(item["attributes"].items())),
                         "status": status})
        return rows


def same_secret(given: str, secret: str) -> bool:
    """Constant-time comparison of any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode())


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))


async def _read_form(session: WalletSession, request: Request) -> tuple[Response | None, dict[str, str]]:
    """A checked request's form fields (at most MAX_FORM_BYTES, 4 fields, the CSRF token right), or the refusal."""
    refused = session.refusal(request)
    if refused is not None:
        return refused, {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return HTMLResponse("body: too large", status_code=413), {}
    # application/x-www-form-urlencoded, the only encoding these forms send.
    try:
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=4).items()}
    except ValueError:
        return HTMLResponse("body: expected at most 4 form fields", status_code=400), {}
    if not same_secret(fields.get("csrf", ""), session.csrf):
        return HTMLResponse("csrf: the form's token is missing or wrong", status_code=403), {}
    return None, fields


def create_wallet_app(session: WalletSession) -> Starlette:
    """The page's routes: / (locked or the wallet), /unlock, /lock; every request checked first."""
    env = _env()

    def page(status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template("wallet.html").render(csrf=session.csrf, max_pages=MAX_UI_PAGES, **context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                                "Cache-Control": "no-store"})

    async def home(request: Request) -> Response:
        token = request.query_params.get("token")
        loopback = session.refusal(request, need_cookie=False) is None
        if token is not None and loopback and same_secret(token, session.token):
            answer = RedirectResponse("/", status_code=303)  # the token leaves the address bar
            answer.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", path="/")
            return answer
        refused = session.refusal(request)
        if refused is not None:
            return refused
        if session.wallet is None:
            return page(locked=True, error=None)
        try:
            rows = session.credentials()
        except ApiError as exc:
            return page(502, locked=False, credentials=[], error=f"node: {exc}")
        return page(locked=False, credentials=rows, error=None, **read_holdings(session.node, session.wallet))

    async def unlock(request: Request) -> Response:
        refused, fields = await _read_form(session, request)
        if refused is not None:
            return refused
        try:
            session.wallet = session.node.open_wallet(session.wallet_path, fields.get("passphrase", ""),
                                                      tails_cache=session.tails_cache)
        except (WalletError, ValueError):
            return page(400, locked=True, error="passphrase: the wallet did not open with it")
        return RedirectResponse("/", status_code=303)

    async def lock(request: Request) -> Response:
        refused, _ = await _read_form(session, request)
        if refused is not None:
            return refused
        session.wallet = None
        return RedirectResponse("/", status_code=303)

    async def stylesheet(request: Request) -> Response:
        # The explorer's stylesheet, so the resident's page reads like the city's portal.
        return FileResponse(EXPLORER_HERE / "static" / "explorer.css", media_type="text/css")

    async def wallet_stylesheet(request: Request) -> Response:
        return FileResponse(HERE / "static" / "wallet.css", media_type="text/css")

    return Starlette(routes=[Route("/", home), Route("/unlock", unlock, methods=["POST"]),
                             Route("/lock", lock, methods=["POST"]), Route("/style.css", stylesheet),
                             Route("/wallet.css", wallet_stylesheet)])
