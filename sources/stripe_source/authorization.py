"""What every request carries to say who reads: the key or OAuth access token, the connected
account, the pinned API version. An OAuth access token Stripe refuses (or that is about to expire)
is renewed once through the `refresh` callable the connection step provides (`connection.tokens`);
the client only knows when to call it."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping

from .api_settings import API_VERSION
from .credentials import StripeCredentials
from .errors import ReauthenticationRequired

Refresh = Callable[[StripeCredentials], StripeCredentials]


class Authorization:
    """The headers of one account's requests, renewed safely while many threads send them."""

    def __init__(self, credentials: StripeCredentials, user_agent: str, refresh: Refresh | None = None) -> None:
        self.user_agent = user_agent
        self.refresh = refresh
        self._lock = threading.Lock()  # shared by every account's view: one renewal at a time
        self.use(credentials)

    def use(self, credentials: StripeCredentials) -> None:
        """Send these credentials from now on (a renewed or adopted token)."""
        self.credentials = credentials
        headers = {
            "Authorization": f"Bearer {credentials.api_key}",
            "Stripe-Version": API_VERSION,
            "User-Agent": self.user_agent,
            "Accept-Encoding": "gzip",
        }
        if credentials.stripe_account:
            headers["Stripe-Account"] = credentials.stripe_account
        self.headers = headers  # replaced whole, never changed: a request in flight keeps what it sent

    def renew_after_refusal(self, refused: Mapping[str, str]) -> bool:
        """After a 401 to a request that sent `refused`: whether a new access token is in place
        (renewed now, or by another thread since); False when there is nothing to renew with."""
        if self.refresh is None or not self.credentials.refresh_token:
            return False
        with self._lock:
            if self.headers is not refused:
                return True  # requests in flight all got the 401; the first one renewed it for them
            self.use(self.refresh(self.credentials))
            return True

    def renew(self) -> None:
        """Renew the OAuth access token now (it is about to expire); raises `ReauthenticationRequired`."""
        if self.refresh is None:
            raise ReauthenticationRequired("no refresh token is stored", self.credentials.stripe_account)
        with self._lock:
            self.use(self.refresh(self.credentials))

    def for_account(self, account: str | None) -> Authorization:
        """The same key or token reading `account` (None: the key's own)."""
        view = copy.copy(self)
        credentials = copy.copy(self.credentials)
        credentials.stripe_account = account
        view.use(credentials)
        return view
