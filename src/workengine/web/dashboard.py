"""The live web dashboard on the HTTP side port: its pages, JSON API, live stream and actions.

The pages are static files (web/static/, no build step); one page serves every view and reads
the JSON API (web/reads.py) and the live stream (web/stream.py). Who may see and act is
web/auth.py's. Every answer carries headers that keep it out of frames and caches and allow
only this origin's scripts, so an injected string cannot run and the Cancel button cannot be
clickjacked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from workengine.domain import attempts
from workengine.engine import WorkEngine
from workengine.web import convert
from workengine.web.auth import Gate, Policy, Viewer, clear_session_cookie, set_session_cookie
from workengine.web.convert import Json
from workengine.web.errors import NO_STORE, Handler, api, json_error
from workengine.web.reads import Reads
from workengine.web.stream import EventStreams, resume_cursor, watch_target

STATIC = Path(__file__).parent / "static"
# The single page's paths (it routes on the client); everything else is the API or files.
PAGES = (
    "/",
    "/orchestrators/{orchestrator_id}",
    "/orchestrators/{orchestrator_id}/stats",
    "/tasks/{task_id}",
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it, browsers send "Origin: null" on same-origin POSTs (Fetch spec),
    # and the origin check refuses them. same-origin still tells other sites nothing.
    "Referrer-Policy": "same-origin",
}
CANCEL_REASON = "cancelled from the dashboard"
Read = Callable[[web.Request], Awaitable[Json]]


class Dashboard:
    def __init__(self, engine: WorkEngine, policy: Policy, max_streams_per_client: int) -> None:
        self._engine = engine
        self.gate = Gate(policy)
        self.streams = EventStreams(engine, max_streams_per_client)
        self._reads = Reads(engine)

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(security_headers)
        app.on_shutdown.append(self._on_shutdown)
        for path in PAGES:
            app.router.add_get(path, self.page)
        app.router.add_get("/signin", self.signin_page)
        app.router.add_post("/signin", self.sign_in)
        app.router.add_post("/signout", self.sign_out)
        app.router.add_static("/static", STATIC)
        app.router.add_get("/api/session", api(self.session))
        reads = self._reads
        for path, read in (
            ("/api/overview", reads.overview),
            ("/api/orchestrators/{orchestrator_id}", reads.orchestrator),
            ("/api/orchestrators/{orchestrator_id}/queue", reads.queue),
            ("/api/orchestrators/{orchestrator_id}/blocked", reads.blocked),
            ("/api/orchestrators/{orchestrator_id}/tasks", reads.tasks),
            ("/api/orchestrators/{orchestrator_id}/stats", reads.stats),
            ("/api/tasks/{task_id}", reads.task),
            ("/api/tasks/{task_id}/events", reads.history),
        ):
            app.router.add_get(path, self.reader(read))
        app.router.add_get("/api/events", api(self.events))
        app.router.add_post("/api/tasks/{task_id}/cancel", self.actor(self.cancel))
        app.router.add_post("/api/tasks/{task_id}/retry", self.actor(self.retry))

    async def _on_shutdown(self, app: web.Application) -> None:
        self.streams.close()

    def _viewer(self, request: web.Request) -> Viewer | web.Response:
        """The viewer, or the refusal to answer with (403 not allowed here, 401 sign in first)."""
        if (refused := self.gate.refusal(request)) is not None:
            return json_error(403, refused)
        viewer = self.gate.viewer(request)
        if viewer is None:
            return json_error(401, "sign in first: the dashboard needs the admin token")
        return viewer

    def reader(self, read: Read) -> Handler:
        @api
        async def handler(request: web.Request) -> web.StreamResponse:
            viewer = self._viewer(request)
            if isinstance(viewer, web.Response):
                return viewer
            return web.json_response(await read(request), headers=NO_STORE)

        return handler

    def actor(self, act: Callable[[web.Request], Awaitable[Json]]) -> Handler:
        """A POST: only for a viewer who may act, with the CSRF token, from this origin."""

        @api
        async def handler(request: web.Request) -> web.StreamResponse:
            viewer = self._viewer(request)
            if isinstance(viewer, web.Response):
                return viewer
            if (refused := self.gate.csrf_refusal(request, viewer)) is not None:
                return json_error(403, refused)
            if not viewer.can_act:
                return json_error(403, viewer.read_only_reason)
            return web.json_response(await act(request), headers=NO_STORE)

        return handler

    async def events(self, request: web.Request) -> web.StreamResponse:
        viewer = self._viewer(request)
        if isinstance(viewer, web.Response):
            return viewer

        def allowed() -> bool:
            return self.gate.refusal(request) is None and self.gate.viewer(request) is not None

        return await self.streams.serve(request, watch_target(request), resume_cursor(request), allowed)

    async def cancel(self, request: web.Request) -> Json:
        task, _ = await self._engine.tasks.cancel(request.match_info["task_id"], CANCEL_REASON)
        return {"task": convert.task_summary(task)}

    async def retry(self, request: web.Request) -> Json:
        """RetryTask, granting one more attempt when the task has used all of its own: a
        person pressing Retry means "try again", whatever the budget was."""
        task, _ = await self._engine.tasks.get_with_attempts(request.match_info["task_id"])
        budget = attempts.failed_attempts(task) + 1  # never lowers max_attempts (RetryTask's rule)
        return {"task": convert.task_summary(await self._engine.tasks.retry(task.id, budget))}

    async def session(self, request: web.Request) -> web.StreamResponse:
        """Who the page is showing to: whether to offer actions, and the CSRF token to send."""
        viewer = self._viewer(request)
        if isinstance(viewer, web.Response):
            return viewer
        return web.json_response(
            {
                "authentication": self.gate.policy.signing_in,
                "signed_in": viewer.signed_in,
                "can_act": viewer.can_act,
                "read_only_reason": viewer.read_only_reason,
                "csrf_token": viewer.csrf_token,
            },
            headers=NO_STORE,
        )

    async def page(self, request: web.Request) -> web.StreamResponse:
        if (refused := self.gate.refusal(request)) is not None:
            return web.Response(status=403, text=refused)
        if self.gate.viewer(request) is None:
            raise web.HTTPSeeOther("/signin")
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def signin_page(self, request: web.Request) -> web.StreamResponse:
        if (refused := self.gate.refusal(request)) is not None:
            return web.Response(status=403, text=refused)
        if not self.gate.policy.signing_in:
            raise web.HTTPSeeOther("/")
        return web.FileResponse(STATIC / "signin.html", headers={"Cache-Control": "no-cache"})

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        """The sign-in form's POST: the token in the body; a session cookie back, or the form
        again with an error (the token never goes into a URL)."""
        if (refused := self.gate.refusal(request) or self.gate.cross_site(request)) is not None:
            return json_error(403, refused)
        form = await request.post()
        token = form.get("token")
        session_id = self.gate.sign_in(token if isinstance(token, str) else "")
        if session_id is None:
            raise web.HTTPSeeOther("/signin?failed=1")
        response = web.HTTPSeeOther("/")
        set_session_cookie(response, request, session_id)
        raise response

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        viewer = self.gate.viewer(request)
        if viewer is None or not viewer.signed_in:
            raise web.HTTPSeeOther("/signin")
        if (refused := self.gate.csrf_refusal(request, viewer)) is not None:
            return json_error(403, refused)
        self.gate.sign_out(request)
        response = web.HTTPSeeOther("/signin")
        clear_session_cookie(response)
        raise response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as raised:
        raised.headers.update(SECURITY_HEADERS)
        raise
    if not response.prepared:  # a live stream has sent its headers already
        response.headers.update(SECURITY_HEADERS)
    return response
