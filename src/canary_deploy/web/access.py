"""Who may see the dashboard and who may steer from it: the bind policy, the tokens, and
the Host / Origin checks that keep other web sites out (CSRF, DNS rebinding)."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from canary_deploy.errors import UsageError

# The cookie a remote user's access token is kept in once a `?token=` link was opened.
ACCESS_COOKIE = "canary_dashboard"
# The header the page sends its per-session steering token in.
SESSION_HEADER = "x-canary-token"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("192.168.1.5"), is_loopback("example.com")
    (False, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name we do not resolve: treat it as reachable from outside


def check_bind(host: str, *, allow_remote: bool, token: str | None) -> None:
    """Refuse to serve beyond this machine unless asked to, and never without a token."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise UsageError(
            f"refusing to serve the dashboard on {host}: other machines could reach it",
            hint="keep the default (127.0.0.1; an SSH tunnel reaches it from elsewhere), or "
            "pass --allow-remote with --token (or CANARY_DASHBOARD_TOKEN)",
        )
    if not token:
        raise UsageError(
            f"--allow-remote needs a token: anyone who reaches {host} could see the stack",
            hint="pass --token TEXT (or set CANARY_DASHBOARD_TOKEN); open the printed URL, "
            "which carries it",
        )
    if len(token) < 16:
        raise UsageError(
            "the dashboard token is too short to keep a remote dashboard private",
            hint="use at least 16 characters, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe())'`",
        )


@dataclass(frozen=True)
class Access:
    """The dashboard's access rules for one run of the server."""

    host: str
    port: int
    allow_control: bool = False
    # Required on every request when set (remote dashboards).
    access_token: str | None = None
    # Sent with every steering request by the page; new for each run of the server.
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def remote(self) -> bool:
        return not is_loopback(self.host)

    def host_allowed(self, host_header: str | None) -> bool:
        """The Host header names this server: a loopback dashboard answers only to
        loopback names, so a DNS-rebound site cannot read it.

        >>> a = Access("127.0.0.1", 8321)
        >>> a.host_allowed("127.0.0.1:8321"), a.host_allowed("localhost:8321")
        (True, True)
        >>> a.host_allowed("evil.example:8321"), a.host_allowed("127.0.0.1:80")
        (False, False)
        """
        if not host_header:
            return False
        if self.remote:
            return True  # names unknown; the access token guards it
        parsed = urlsplit(f"//{host_header}")
        return parsed.hostname in _LOOPBACK_NAMES and parsed.port == self.port

    def token_ok(self, headers: Mapping[str, str], query: str) -> bool:
        """With an access token: given as `?token=`, as the cookie, or as a bearer."""
        if self.access_token is None:
            return True
        given = [
            *parse_qs(query).get("token", []),
            _cookie(headers.get("cookie", ""), ACCESS_COOKIE),
            headers.get("authorization", "").removeprefix("Bearer "),
        ]
        return any(_same(value, self.access_token) for value in given if value)

    def steering_refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a steering request must be refused, or None: control must be on, the
        request must come from this dashboard's own page (Origin, Sec-Fetch-Site) and
        carry the page's session token."""
        if not self.allow_control:
            return (
                "this dashboard is read-only: start it with `canary dashboard "
                "--allow-control` to steer from the page"
            )
        origin = headers.get("origin")
        own = f"http://{headers.get('host', '')}"
        if origin != own:
            return f"cross-origin request refused (Origin {origin or 'missing'}, expected {own})"
        site = headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            return f"cross-site request refused (Sec-Fetch-Site {site})"
        if not _same(headers.get(SESSION_HEADER, ""), self.session_token):
            return "missing or wrong session token: reload the dashboard"
        return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _cookie(header: str, name: str) -> str:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except Exception:  # a malformed Cookie header is simply no cookie
        return ""
    morsel = cookie.get(name)
    return "" if morsel is None else morsel.value
