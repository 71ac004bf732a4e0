"""The dashboard as an ASGI app: ``app(settings)``, served by ``taskstore dashboard`` or
mounted in an application of yours (``Mount("/taskstore", app(settings))``).

Pages: the overview (queue depth, workers), the last hour's charts, the failed jobs
(filtered, paged; retry one, retry all that match, discard), an owner's tasks, and the
settings in force. The overview and the charts refresh every 2 s (a little plain JS
replacing a fragment). Safety:

- With ``DASHBOARD_TOKEN`` every request needs it: ``Authorization: Bearer <token>``,
  or the HttpOnly cookie its login form sets. Without one the app trusts whoever
  reaches it (loopback only, or your own auth in front when mounted).
- Every action is a POST carrying the CSRF token of its form (a cookie and a hidden
  field that must agree); ``DASHBOARD_READ_ONLY`` hides and refuses every action.
- No value of a record, a variable or a result is shown: sizes and types only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from store import StorageError
from worker.protocol.errors import FailedJobNotKept, JobAlreadyQueued
from worker.protocol.settings import Settings
from worker.tools.dashboard import charts, formats
from worker.tools.dashboard.reads import BadRequest, Deployment

SESSION, CSRF = "taskstore_session", "taskstore_csrf"
REFRESH_MS = 2000

Handler = Callable[[Request], Awaitable[Response]]


def app(settings: Settings) -> Starlette:
    """The dashboard of the deployment ``settings`` names, as an ASGI app."""
    deployment = Deployment(settings)
    pages = Pages(settings, deployment)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await deployment.aclose()

    static = StaticFiles(directory=str(resources.files(__package__).joinpath("static")))
    routes = [
        Route("/", pages.guarded(pages.overview)),
        Route("/fragments/overview", pages.guarded(pages.overview_fragment)),
        Route("/charts", pages.guarded(pages.charts)),
        Route("/fragments/charts", pages.guarded(pages.charts_fragment)),
        Route("/failed", pages.guarded(pages.failed)),
        Route("/failed/retry", pages.guarded(pages.retry, action=True), methods=["POST"]),
        Route("/failed/retry-all", pages.guarded(pages.retry_all, action=True), methods=["POST"]),
        Route("/failed/discard", pages.guarded(pages.discard, action=True), methods=["POST"]),
        Route("/tasks", pages.guarded(pages.tasks)),
        Route("/settings", pages.guarded(pages.settings_page)),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Mount("/static", static, name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


class Pages:
    def __init__(self, settings: Settings, deployment: Deployment) -> None:
        self.settings, self.deployment = settings, deployment
        token = settings.dashboard_token
        self.token = token.get_secret_value() if token is not None else None
        self.session = (
            hmac.new(self.token.encode(), b"taskstore dashboard", hashlib.sha256).hexdigest()
            if self.token is not None
            else None
        )
        self.templates = Environment(
            loader=PackageLoader(__package__, "templates"),
            autoescape=select_autoescape(default=True),
        )
        self.templates.filters.update(
            when=formats.when, duration=formats.duration, thousands=formats.thousands
        )

    # -- the gate every page and action passes -------------------------------------

    def guarded(self, handler: Handler, *, action: bool = False) -> Handler:
        async def gate(request: Request) -> Response:
            if not self._authenticated(request):
                return self._page(request, "login.html", status=401, wrong=False)
            if action:
                if self.settings.dashboard_read_only:
                    return self._error(request, 403, "this dashboard is read-only")
                refused = await self._forged(request)
                if refused is not None:
                    return refused
            try:
                return await handler(request)
            except BadRequest as exc:
                return self._error(request, 400, str(exc))
            except FailedJobNotKept as exc:
                return self._error(request, 404, str(exc))
            except JobAlreadyQueued as exc:
                return self._error(request, 409, str(exc))
            except StorageError as exc:
                return self._error(request, 503, f"the store failed: {exc}")
            except RedisError as exc:
                return self._error(request, 503, f"the queue's Redis failed: {exc}")

        return gate

    def _authenticated(self, request: Request) -> bool:
        if self.token is None:
            return True
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and _same(bearer[7:], self.token):
            return True
        cookie = request.cookies.get(SESSION, "")
        return self.session is not None and _same(cookie, self.session)

    async def _forged(self, request: Request) -> Response | None:
        """A 403 unless the form's CSRF token is the cookie's."""
        form = await request.form()
        sent, kept = str(form.get("csrf", "")), request.cookies.get(CSRF, "")
        if not sent or not kept or not _same(sent, kept):
            return self._error(request, 403, "the form's CSRF token is missing or wrong")
        return None

    async def login(self, request: Request) -> Response:
        if self.token is None:
            return RedirectResponse(self._root(request), status_code=303)
        if request.method == "GET":
            return self._page(request, "login.html", wrong=False)
        refused = await self._forged(request)
        if refused is not None:
            return refused
        form = await request.form()
        if not _same(str(form.get("token", "")), self.token):
            return self._page(request, "login.html", status=401, wrong=True)
        response = RedirectResponse(self._root(request), status_code=303)
        response.set_cookie(
            SESSION,
            self.session or "",
            httponly=True,
            samesite="strict",
            path=self._root(request),
            secure=request.url.scheme == "https",
        )
        return response

    # -- pages --------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        return self._page(request, "overview.html", report=await self.deployment.report())

    async def overview_fragment(self, request: Request) -> Response:
        report = await self.deployment.report()
        return self._page(request, "_overview.html", report=report)

    async def charts(self, request: Request) -> Response:
        report = await self.deployment.report()
        return self._page(request, "charts.html", charts=charts.last_hour(report.queue.minutes))

    async def charts_fragment(self, request: Request) -> Response:
        report = await self.deployment.report()
        return self._page(request, "_charts.html", charts=charts.last_hour(report.queue.minutes))

    async def failed(self, request: Request) -> Response:
        function = request.query_params.get("function") or None
        error = request.query_params.get("error") or None
        page = _page_number(request.query_params.get("page", "0"))
        jobs, total = await self.deployment.failed(function, error, page)
        return self._page(
            request,
            "failed.html",
            jobs=jobs,
            total=total,
            page=page,
            pages=max((total + 49) // 50, 1),
            function=function or "",
            error=error or "",
            done=request.query_params.get("done", ""),
        )

    async def retry(self, request: Request) -> Response:
        form = await request.form()
        job_id = str(form.get("job_id", ""))
        await self.deployment.retry(job_id)
        return self._back(request, form, f"job {job_id} queued again")

    async def retry_all(self, request: Request) -> Response:
        form = await request.form()
        function, error = str(form.get("function", "")), str(form.get("error", ""))
        retried, refused = await self.deployment.retry_matching(function or None, error or None)
        left = f"; {refused} refused jobs cannot be retried, only discarded" if refused else ""
        return self._back(request, form, f"{retried} jobs queued again{left}")

    async def discard(self, request: Request) -> Response:
        form = await request.form()
        job_id = str(form.get("job_id", ""))
        await self.deployment.discard(job_id)
        return self._back(request, form, f"job {job_id} discarded")

    async def tasks(self, request: Request) -> Response:
        owner = request.query_params.get("owner", "")
        found = None
        if owner:
            found = await self.deployment.owner(owner, request.query_params.get("cursor") or None)
        return self._page(request, "tasks.html", owner=owner, found=found)

    async def settings_page(self, request: Request) -> Response:
        shown = await self.deployment.settings_in_force()
        return self._page(request, "settings.html", shown=shown)

    # -- rendering ----------------------------------------------------------------

    def _page(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> Response:
        csrf = request.cookies.get(CSRF) or secrets.token_urlsafe(32)
        html = self.templates.get_template(template).render(
            root=self._root(request),
            csrf=csrf,
            read_only=self.settings.dashboard_read_only,
            queue=self.settings.queue_name,
            refresh_ms=REFRESH_MS,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if CSRF not in request.cookies:
            response.set_cookie(CSRF, csrf, samesite="strict", path=self._root(request))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        )
        return response

    def _error(self, request: Request, status: int, message: str) -> Response:
        return self._page(request, "error.html", status=status, status_code=status, message=message)

    def _back(self, request: Request, form: Any, done: str) -> Response:
        """After an action, the failed jobs as they were filtered, saying what was done."""
        query = {k: str(form.get(k, "")) for k in ("function", "error") if form.get(k)}
        params = urlencode({**query, "done": done})
        return RedirectResponse(f"{self._root(request)}failed?{params}", status_code=303)

    @staticmethod
    def _root(request: Request) -> str:
        """Where the dashboard is mounted (``/`` when served alone)."""
        return str(request.scope.get("root_path", "")).rstrip("/") + "/"


def _same(given: str, kept: str) -> bool:
    """A constant-time comparison that any text may be given to (``compare_digest`` refuses
    non-ASCII ``str``)."""
    return hmac.compare_digest(given.encode(), kept.encode())


def _page_number(text: str) -> int:
    if not text.isdigit() or int(text) > 100_000:
        raise BadRequest("page is a number from 0")
    return int(text)
