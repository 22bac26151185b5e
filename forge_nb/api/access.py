"""Who may call the API: HTTP Basic credentials, read-only mode, and same-origin mutations.

The API is mounted next to the dashboard on a Bokeh/Tornado server whose own
auth does not cover extra routes, so every request is checked here.
Credentials follow Panel's ``basic_auth`` convention so ``--basic-auth`` can be
handed to both unchanged: a plain string is the password for any user name, a
mapping (or the path of a JSON file holding one) maps user names to passwords.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Methods that never change anything; everything else is a mutation.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Credentials = str | Mapping[str, str]


def load_credentials(spec: Credentials | None) -> Credentials | None:
    """Resolve a ``basic_auth`` value: a JSON file path becomes its mapping."""
    if isinstance(spec, str) and os.path.isfile(spec):
        with open(spec, encoding="utf-8") as fh:
            loaded = json.load(fh)
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise ValueError(f"{spec}: expected a JSON object of user name -> password")
        return loaded
    if spec is not None and not isinstance(spec, str | Mapping):
        raise TypeError(
            f"basic_auth must be a password, a mapping or a JSON file path, got {spec!r}"
        )
    if isinstance(spec, str) and not spec:
        raise ValueError("basic_auth must not be an empty password")
    return spec


def panel_credentials(application: Any) -> Credentials | None:
    """The basic auth Panel was configured with (``panel serve --basic-auth`` / ``pn.serve``)."""
    from panel.config import config

    from forge_nb.compat import server_config

    spec = server_config(application).get("basic_auth") or config.basic_auth
    return load_credentials(spec) if spec else None


def password_matches(credentials: Credentials, user: str, password: str) -> bool:
    """Constant-time check of one user/password pair."""
    if isinstance(credentials, str):
        expected = credentials
    elif user in credentials:
        expected = credentials[user]
    else:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), password.encode("utf-8"))


def parse_basic_header(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic …`` → (user, password); None when absent or malformed."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


@dataclass(frozen=True)
class ApiAccess:
    """The access policy of one mounted API.

    ``basic_auth`` turns auth on for every route (reads included: payloads and
    errors may hold secrets). ``panel_auth`` instead follows whatever basic auth
    the Panel server itself was started with. ``read_only`` refuses mutations
    with 403 while keeping the routes.
    """

    read_only: bool = False
    basic_auth: Credentials | None = None
    panel_auth: bool = False

    @classmethod
    def build(
        cls,
        *,
        read_only: bool = False,
        basic_auth: Credentials | None = None,
        panel_auth: bool = False,
    ) -> ApiAccess:
        """Validate the settings up front, so a bad credentials file fails at startup."""
        return cls(
            read_only=read_only, basic_auth=load_credentials(basic_auth), panel_auth=panel_auth
        )

    def credentials(self, application: Any) -> Credentials | None:
        """The credentials in force for this server (None: auth is off)."""
        if self.basic_auth is not None:
            return self.basic_auth
        if self.panel_auth:
            return panel_credentials(application)
        return None

    def authenticated(
        self,
        credentials: Credentials,
        authorization: str | None,
        login_cookie: Callable[[], bytes | None],
    ) -> bool:
        """Basic credentials in the header, or the signed login cookie of Panel's login page."""
        pair = parse_basic_header(authorization)
        if pair is not None:
            return password_matches(credentials, *pair)
        return bool(login_cookie())
