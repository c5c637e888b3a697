"""Who may see the dashboard and who may act on it, and how a browser proves it.

- With an admin token, the dashboard and its API need a signed-in session: the sign-in page
  posts the token in the request body (never a URL, never logged); the answer is a random
  session id in a cookie (HttpOnly, SameSite=Strict) that maps, in this process's memory, to
  the session's expiry and CSRF token. A signed-in admin may act (Cancel, Retry).
- Without one, the dashboard is open. On a loopback host anyone may act: whoever reaches the
  port can do the same over gRPC. On another host (--insecure) it is read-only: an open HTTP
  port on a network should not let every passer-by cancel work.
- Authenticating only by client certificates (which HTTP here cannot check), it answers
  loopback clients only, read-only, like /metrics.

Every POST must carry the session's CSRF token in the X-CSRF-Token header (a cross-site page
cannot read it, nor set a custom header without a CORS preflight, which is never granted), and
an Origin, when sent, naming this host. Without authentication, a Host header that is not a
loopback name is refused, so a DNS-rebinding page cannot read or act through a local browser.
Sessions live in the process: a restart or another replica signs people out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from workengine.addresses import is_loopback
from workengine.domain.access import same_secret

SESSION_COOKIE = "workengine_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Policy:
    """The server's settings that decide the rules above."""

    admin_token: str | None
    client_certificates: bool = False
    loopback_host: bool = True

    @property
    def signing_in(self) -> bool:
        return self.admin_token is not None

    @property
    def loopback_clients_only(self) -> bool:
        return not self.signing_in and self.client_certificates

    @property
    def read_only_reason(self) -> str:
        if self.signing_in:
            return ""
        if self.client_certificates:
            return "read-only: the server authenticates by client certificates, which HTTP here cannot check"
        if not self.loopback_host:
            return "read-only: authentication is off and the server listens beyond this machine"
        return ""


@dataclass(frozen=True)
class Viewer:
    """Who is asking: `can_act` says whether Cancel and Retry are offered and accepted."""

    signed_in: bool
    can_act: bool
    csrf_token: str
    read_only_reason: str = ""


@dataclass
class Session:
    csrf_token: str
    expires_at: float


class Sessions:
    """Signed-in sessions by id, in memory, each for SESSION_SECONDS at most."""

    def __init__(
        self,
        lifetime: float = SESSION_SECONDS,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lifetime = lifetime
        self._limit = limit
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def create(self) -> str:
        now = self._clock()
        if len(self._by_id) >= self._limit:
            self._by_id = {k: s for k, s in self._by_id.items() if s.expires_at > now}
            while len(self._by_id) >= self._limit:  # still full: the oldest go first
                del self._by_id[next(iter(self._by_id))]
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = Session(secrets.token_urlsafe(32), now + self._lifetime)
        return session_id

    def get(self, session_id: str) -> Session | None:
        session = self._by_id.get(session_id)
        if session is not None and session.expires_at <= self._clock():
            del self._by_id[session_id]
            return None
        return session

    def end(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)


def host_name(host_header: str) -> str:
    """The name in a Host header or an Origin's netloc, without the port."""
    return urlsplit(f"//{host_header}").hostname or ""


class Gate:
    """Applies the policy to requests."""

    def __init__(self, policy: Policy, sessions: Sessions | None = None) -> None:
        self.policy = policy
        self.sessions = sessions or Sessions()
        # Without sign-in there is no session to hold a CSRF token: one for the process.
        self._open_csrf = secrets.token_urlsafe(32)

    def refusal(self, request: web.Request) -> str | None:
        """Why this client may not see the dashboard at all, whoever signs in (None: it may)."""
        if self.policy.loopback_clients_only and not is_loopback(request.remote or ""):
            return "the dashboard answers only loopback clients while authentication uses client certificates"
        # Open to whoever reaches it locally (no sign-in): a page of another site that rebinds
        # its name to 127.0.0.1 (DNS rebinding) would reach it too, with its own Host header.
        open_locally = not self.policy.signing_in and (
            self.policy.loopback_host or self.policy.loopback_clients_only
        )
        if open_locally and not is_loopback(host_name(request.host)):
            return "open the dashboard by a loopback address (127.0.0.1 or localhost)"
        return None

    def viewer(self, request: web.Request) -> Viewer | None:
        """The viewer, or None when sign-in is needed first."""
        if not self.policy.signing_in:
            reason = self.policy.read_only_reason
            return Viewer(False, not reason, self._open_csrf, reason)
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            return None
        return Viewer(True, True, session.csrf_token)

    def cross_site(self, request: web.Request) -> str | None:
        """Why a POST looks cross-site (None: it does not)."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():  # "null" too
            return "Origin: not this dashboard; cross-site requests are refused"
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "Sec-Fetch-Site: cross-site requests are refused"
        return None

    def csrf_refusal(self, request: web.Request, viewer: Viewer) -> str | None:
        if (why := self.cross_site(request)) is not None:
            return why
        presented = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(presented.encode(), viewer.csrf_token.encode()):
            return f"{CSRF_HEADER}: missing or wrong; reload the page"
        return None

    def sign_in(self, token: str) -> str | None:
        """A new session's id when `token` is the admin token, else None."""
        if self.policy.admin_token is None or not token or not same_secret(token, self.policy.admin_token):
            return None
        return self.sessions.create()

    def sign_out(self, request: web.Request) -> None:
        self.sessions.end(request.cookies.get(SESSION_COOKIE, ""))


def set_session_cookie(response: web.StreamResponse, request: web.Request, session_id: str) -> None:
    # Secure only when this request came over HTTPS: a browser drops a Secure cookie sent over
    # plain HTTP, and the side port itself speaks plain HTTP. (aiohttp does not read a proxy's
    # X-Forwarded-Proto, so behind a TLS proxy the cookie is not marked Secure: docs/operations.md.)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
