"""The dashboard of ``mxdoctor watch`` as an ASGI app (Starlette): the overview of every watched
queue, a page per domain with its history chart and latest diagnosis report, a form to diagnose any
domain with the watch's views, and the JSON API behind them (``GET /api/v1/state``).

Safe by default: loopback unless configured otherwise, and then a token (bearer header or a login
cookie); every action is a POST carrying a CSRF token; no secret from the config reaches a page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mxdoctor import _codec, route
from mxdoctor.errors import ConfigError, MxdoctorError
from mxdoctor.monitor import config
from mxdoctor.monitor.fleet import Fleet
from mxdoctor.queues.status import format_age
from mxdoctor.report import html as html_report
from mxdoctor.web import chart
from mxdoctor.web.board import Board

STATE_SCHEMA = "mxdoctor.watch-state"
STATE_VERSION = "1.0"
CSRF_COOKIE = "mxdoctor_csrf"
SESSION_COOKIE = "mxdoctor_session"

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("mxdoctor.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class WebOptions:
    """The ``[web]`` table of the watch configuration."""

    host: str = "127.0.0.1"
    port: int = 8425
    token: str | None = field(default=None, repr=False)  # required beyond loopback; never in a repr
    refresh: int = 30  # seconds between the pages' own reloads
    threshold: str = "30m"  # the alert age, as shown

    @property
    def loopback(self) -> bool:
        return config.is_loopback(self.host)

    def check(self) -> None:
        if not self.loopback and not self.token:
            raise ConfigError(f"web: listening on {self.host} (beyond loopback) requires a token (web.token)")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("web.token: use at least 16 characters")
        if not 0 < self.port < 65536:
            raise ConfigError("web.listen: port must be a number from 1 to 65535")


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else format_age(seconds)


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Dashboard:
    """The routes over one Board; ``app`` is the ASGI application."""

    def __init__(self, board: Board, options: WebOptions, fleet: Fleet | None = None) -> None:
        options.check()
        self.board = board
        self.options = options
        self.fleet = fleet
        # Sessions are an HMAC of the token under a per-process key: a restart signs everyone out.
        self._key = secrets.token_bytes(32)
        self.app = Starlette(routes=[
            Route("/", self._guard(self.overview)),
            Route("/domain/{domain}", self._guard(self.domain)),
            Route("/domain/{domain}/report", self._guard(self.domain_report)),
            Route("/diagnose", self._guard(self.diagnose_form), methods=["GET"]),
            Route("/diagnose", self._guard(self.diagnose), methods=["POST"]),
            Route("/api/v1/state", self._guard(self.state)),
            # Pushes carry their host's own token, not the dashboard's.
            Route("/api/v1/queues/{host}", self.push, methods=["POST"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
        ])

    # -- access --------------------------------------------------------------------------------
    def _session_value(self) -> str:
        token = (self.options.token or "").encode()
        return hmac.new(self._key, token, hashlib.sha256).hexdigest()

    def authorized(self, request: Request) -> bool:
        if self.options.token is None:
            return True
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), self.options.token):
            return True
        return hmac.compare_digest(request.cookies.get(SESSION_COOKIE, ""), self._session_value())

    def _guard(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            if not self.authorized(request):
                if request.url.path.startswith("/api/"):
                    return JSONResponse({"error": "a valid bearer token is required"}, status_code=401)
                return RedirectResponse("/login", status_code=303)
            return await handler(request)

        return guarded

    @staticmethod
    def _csrf(request: Request) -> str:
        return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)

    async def _csrf_ok(self, request: Request) -> tuple[bool, dict[str, str]]:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = fields.get("csrf", "")
        return bool(cookie) and hmac.compare_digest(cookie, sent), fields

    def _page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        csrf = self._csrf(request)
        body = _ENV.get_template(template).render(
            csrf=csrf, age=_age, when=_when, refresh=context.pop("refresh", None),
            subtitle=f"{len(self.board.queues())} queue(s) · {_when(time.time())}", **context,
        )
        response = HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        return response

    # -- pages ---------------------------------------------------------------------------------
    async def overview(self, request: Request) -> Response:
        return self._page(request, "overview.html.j2", title="queues", queues=self.board.queues(),
                          refresh=self.options.refresh, threshold=self.options.threshold)

    async def domain(self, request: Request) -> Response:
        domain = request.path_params["domain"]
        queue = request.query_params.get("queue", "")
        points = self.board.history(queue, domain)
        return self._page(
            request, "domain.html.j2", title=domain, domain=domain, queue=queue, refresh=self.options.refresh,
            chart=chart.svg(points, title=f"{domain}: held messages and oldest age over time"),
            has_report=self.board.report(domain, queue) is not None,
        )

    async def domain_report(self, request: Request) -> Response:
        d = self.board.report(request.path_params["domain"], request.query_params.get("queue", ""))
        if d is None:
            return HTMLResponse("no diagnosis kept for this domain", status_code=404, headers=_SECURITY_HEADERS)
        return HTMLResponse(html_report.render(d), headers=_SECURITY_HEADERS)

    async def diagnose_form(self, request: Request) -> Response:
        return self._page(request, "diagnose.html.j2", title="diagnose", views=self.board.views(), error=None)

    async def diagnose(self, request: Request) -> Response:
        ok, fields = await self._csrf_ok(request)
        if not ok:
            return HTMLResponse("missing or wrong CSRF token: reload the page and try again", status_code=403,
                                headers=_SECURITY_HEADERS)
        target = fields.get("domain", "").strip()
        try:
            route.normalise_target(target)
            d = await run_in_threadpool(self.board.diagnose, target)
        except MxdoctorError as exc:
            return self._page(request, "diagnose.html.j2", status=400, title="diagnose", views=self.board.views(),
                              error=str(exc))
        return HTMLResponse(html_report.render(d), headers=_SECURITY_HEADERS)

    async def state(self, request: Request) -> Response:
        return JSONResponse({
            "schema": STATE_SCHEMA,
            "version": STATE_VERSION,
            "generated_at": datetime.now(UTC).isoformat(),
            "queues": _codec.dump(list(self.board.queues())),
        })

    async def push(self, request: Request) -> Response:
        """POST /api/v1/queues/HOST: one queue snapshot of HOST, any format ``mxdoctor queue`` reads."""
        if self.fleet is None:
            return JSONResponse({"error": "this watch takes no pushed queues (no [hosts] in its configuration)"},
                                status_code=404)
        host = request.path_params["host"]
        auth = request.headers.get("authorization")
        if host not in self.fleet.hosts or not auth:
            result = self.fleet.accept(host, auth, b"")  # the same 401/403 answers, before any body is read
            return JSONResponse({"error": result.message}, status_code=result.status)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.fleet.max_body:
            return JSONResponse({"error": f"snapshot larger than {self.fleet.max_body} bytes"}, status_code=413)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.fleet.max_body:
                return JSONResponse({"error": f"snapshot larger than {self.fleet.max_body} bytes"}, status_code=413)
            chunks.append(chunk)
        result = await run_in_threadpool(self.fleet.accept, host, auth, b"".join(chunks))
        payload: dict[str, Any] = {"message": result.message, **result.details}
        if result.status >= 400:
            payload = {"error": result.message}
        return JSONResponse(payload, status_code=result.status)

    async def login_form(self, request: Request) -> Response:
        return self._page(request, "login.html.j2", title="sign in", error=None)

    async def login(self, request: Request) -> Response:
        ok, fields = await self._csrf_ok(request)
        token = fields.get("token", "")
        if not ok or self.options.token is None or not hmac.compare_digest(token, self.options.token):
            return self._page(request, "login.html.j2", status=403, title="sign in", error="wrong token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, self._session_value(), httponly=True, samesite="strict")
        return response


# Pages are self-contained: forbid every outside load, framing by others and content sniffing.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
