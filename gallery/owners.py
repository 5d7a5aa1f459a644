"""Who may change a painting (or a training), without accounts: the browser that made it, or an operator.

The first painting a browser makes gives it a secret, in an HttpOnly, SameSite=Strict cookie
(`dp_owner`, a year and a month long); the painting's record keeps only the secret's SHA-256
digest, so the database never holds a secret that could be replayed. Only a request carrying the
secret, or the operator token (`Authorization: Bearer <GALLERY_OPERATOR_TOKEN>`), may cancel, remix
or delete the painting. With `GALLERY_PRIVATE` each browser sees only its own paintings, their images
and their events; otherwise the gallery is public to look at.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.responses import Response

from gallery.state import GalleryDep

OWNER_COOKIE = "dp_owner"
COOKIE_MAX_AGE_S = 400 * 24 * 3600  # the longest a browser keeps a cookie (Chromium's cap)
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


class Owned(Protocol):
    """A record a browser made: a painting or a training (`owner`: the digest of its secret)."""

    @property
    def owner(self) -> str | None: ...


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class Visitor:
    """The browser (or client) behind one request."""

    owner: str | None  # the digest of its secret; None while it has none
    operator: bool  # it carries the operator token: it may change anything
    private: bool  # the gallery shows each browser only its own
    new_secret: str | None = None  # given to it by this request, to be set as its cookie

    def may_change(self, record: Owned) -> bool:
        return self.operator or (self.owner is not None and record.owner == self.owner)

    def may_see(self, record: Owned) -> bool:
        return not self.private or self.may_change(record)

    def claim(self) -> str:
        """Its owner digest, giving it a secret first if it has none (set by `remember`)."""
        if self.owner is None:
            self.new_secret = secrets.token_urlsafe(32)
            self.owner = digest(self.new_secret)
        return self.owner

    def remember(self, response: Response, *, secure: bool) -> None:
        """Set the secret given by this request as the browser's cookie."""
        if self.new_secret is not None:
            response.set_cookie(
                OWNER_COOKIE,
                self.new_secret,
                max_age=COOKIE_MAX_AGE_S,
                path="/",
                httponly=True,
                samesite="strict",
                secure=secure,
            )


def visitor(connection: HTTPConnection, gallery: GalleryDep) -> Visitor:
    secret = connection.cookies.get(OWNER_COOKIE, "")
    owner = digest(secret) if _SECRET_RE.fullmatch(secret) else None
    token = gallery.settings.operator_token_value()
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    operator = (
        token is not None and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    )
    return Visitor(owner=owner, operator=operator, private=gallery.settings.private)


VisitorDep = Annotated[Visitor, Depends(visitor)]

__all__ = ["OWNER_COOKIE", "Owned", "Visitor", "VisitorDep", "digest", "visitor"]
