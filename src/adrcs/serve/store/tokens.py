"""API tokens of the results store (a `Store` mixin): only each token's sha256 is stored."""
from __future__ import annotations

import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from adrcs.serve.store.records import ROLES, ApiToken, NotFound, hash_token
from adrcs.serve.store.schema import ApiTokenRow, utcnow


class TokensMixin:
    """`Store` methods for ``api_tokens`` (uses the store's ``_session``)."""

    def create_token(self, name: str, role: str) -> str:
        """Create a token and return its plaintext (shown once; only its sha256 is stored).

        ValueError on a bad role, an empty name or a name already used (revoked names stay taken).
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if not name:
            raise ValueError("token name is required")
        token = secrets.token_urlsafe(32)
        try:
            with self._session(write=True) as s:
                if s.scalar(select(ApiTokenRow.id).where(ApiTokenRow.name == name)) is not None:
                    raise ValueError(f"token name {name!r} already exists")
                s.add(ApiTokenRow(name=name, role=role, token_hash=hash_token(token), created_at=utcnow(),
                                  revoked=False))
        except IntegrityError as e:
            raise ValueError(f"token name {name!r} already exists") from e
        return token

    def check_token(self, token: str) -> tuple[str, str] | None:
        """``(name, role)`` of a valid token, None if unknown or revoked (lookup by hash, compare_digest)."""
        if not token:
            return None
        h = hash_token(token)
        with self._session() as s:
            row = s.execute(select(ApiTokenRow.name, ApiTokenRow.role, ApiTokenRow.token_hash, ApiTokenRow.revoked)
                            .where(ApiTokenRow.token_hash == h)).first()
        if row is None or not hmac.compare_digest(row.token_hash, h) or row.revoked:
            return None
        return row.name, row.role

    def revoke_token(self, name: str) -> None:
        """Revoke a token by name (NotFound if unknown; revoking twice is fine)."""
        with self._session(write=True) as s:
            res = s.execute(update(ApiTokenRow).where(ApiTokenRow.name == name).values(revoked=True))
            if res.rowcount == 0:
                raise NotFound(f"no token {name!r}")

    def list_tokens(self) -> list[ApiToken]:
        """All tokens (without hashes), oldest first."""
        with self._session() as s:
            return [ApiToken(id=r.id, name=r.name, role=r.role, created_at=r.created_at, revoked=bool(r.revoked))
                    for r in s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]
