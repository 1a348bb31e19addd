"""The loopback redirect target of the browser flows (Connect OAuth, Stripe Apps install links).

Stripe sends the browser back to a redirect URI registered in advance (the platform's Connect
settings, or the app manifest's `allowed_redirect_uris`), so the CLI listens on a fixed loopback
port: `http://127.0.0.1:<port>/stripe/callback`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import CONNECT_COMMAND
from .oauth_http import OAuthFailed

CALLBACK_PATH = "/stripe/callback"
DEFAULT_REDIRECT_PORT = 8765  # the CLI's: Stripe redirects only to a redirect URI registered in advance
OAUTH_TIMEOUT = 300.0  # seconds to wait for the browser; Stripe's codes live 5 minutes anyway


class CallbackServer:
    """The redirect target: loopback only, on `port` (0: a free one), closed after the redirect.

    Stripe redirects only to a `redirect_uri` registered in the platform's Connect settings, so a
    fixed `port` lets the user register `http://127.0.0.1:<port>/stripe/callback` once. Requests
    to other paths (a browser's favicon) or that send nothing (a preconnect) are ignored until the
    redirect comes. So is a redirect with a wrong or missing `state` (answered with an error page):
    anyone can make the browser open the callback URL, and a forged request must not cancel the
    user's own sign-in. `wait()` returns the authorization code of the redirect that carried the
    expected `state`; a denial (`error=access_denied`) or silence until the timeout raises `OAuthFailed`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 retry: str = f"{CONNECT_COMMAND} --oauth --client-id ca_...") -> None:
        """`retry`: the command that starts the flow again, for the messages."""
        self._params: dict[str, str] | None = None
        self._answered = threading.Event()  # the redirect with the expected state came
        self._retry = retry
        self._state: str | None = None
        self.ignored = 0  # redirects with a wrong or missing state
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a connection that sends nothing must not hold the flow forever

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                if url.path != CALLBACK_PATH:
                    self._answer(404, "Not the Stripe redirect.")
                    return
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                state_ok = outer._state is not None and secrets.compare_digest(
                    params.get("state", "").encode(), outer._state.encode()
                )
                if not state_ok:
                    outer.ignored += 1
                    self._answer(400, "This link is not from the sign-in the terminal is waiting for (wrong or "
                                      "missing state). Return to the terminal and use the link it shows.")
                    return
                outer._params = params
                outer._answered.set()
                if params.get("code"):
                    self._answer(200, "Stripe connected. You can close this tab and return to the terminal.")
                else:
                    self._answer(400, "Stripe did not connect. Return to the terminal for details.")

            def _answer(self, status: int, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line carries the authorization code

        try:
            # a thread per connection: a browser's preconnect that sends nothing must not hold up the redirect
            self._server = ThreadingHTTPServer((host, port), Handler)
            self._server.daemon_threads = True
        except OSError as exc:
            raise OAuthFailed(
                f"Cannot listen for Stripe's redirect on {host}:{port} ({exc.strerror}): free the port or "
                "pick another with --redirect-port (and register that redirect URI with Stripe)"
            ) from None

    @property
    def redirect_uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{CALLBACK_PATH}"

    def wait(self, state: str, timeout: float = OAUTH_TIMEOUT) -> str:
        self._state = state
        serving = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                   name="stripe-oauth-callback", daemon=True)
        serving.start()
        try:
            self._answered.wait(timeout)
        finally:
            self._server.shutdown()
            serving.join()
            self.close()
        params = self._params
        if params is None:
            forged = (f" ({self.ignored} redirect(s) with a wrong or missing state were ignored: possible forgery)"
                      if self.ignored else "")
            raise OAuthFailed(
                f"No answer from Stripe's consent page within {int(timeout)} s{forged}: "
                f"run `{self._retry}` again and finish in the browser"
            )
        if params.get("error"):
            if params["error"] == "access_denied":
                raise OAuthFailed(
                    "Access was denied on Stripe's consent page, nothing was stored: run "
                    f"`{self._retry}` again and choose Connect", params["error"]
                )
            raise OAuthFailed(
                f"Stripe's consent page returned {params['error']}: "
                f"{params.get('error_description', 'no description')}", params["error"]
            )
        if not params.get("code"):
            raise OAuthFailed(f"The OAuth redirect carried no authorization code: run `{self._retry}` again")
        return params["code"]

    def close(self) -> None:
        self._server.server_close()

    def __enter__(self) -> CallbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def receive_code(
    link: Callable[[str, str], str],
    *,
    retry: str,
    redirect_port: int,
    timeout: float,
    announce: Callable[[str], None],
    open_browser: Callable[[str], Any] | None,
) -> str:
    """Show the link `link(redirect_uri, state)` makes, open it when `open_browser` is given, and return
    the authorization code of the redirect that comes back with that state."""
    state = secrets.token_urlsafe(24)
    with CallbackServer(port=redirect_port, retry=retry) as server:
        url = link(server.redirect_uri, state)
        announce(url)  # always: the user may be on a machine without a browser
        if open_browser:
            # The browser may block (text browsers); the server must be listening already.
            threading.Thread(target=open_browser, args=(url,), daemon=True).start()
        return server.wait(state, timeout)
