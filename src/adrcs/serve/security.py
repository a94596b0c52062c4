"""API tokens with roles: `inspector` may inspect and read; `engineer` may also review; `admin` may also
promote, roll back and retrain. Tokens travel as ``Authorization: Bearer <token>`` (or ``X-API-Token``)
and are checked against the store, which keeps only their SHA-256. Failed checks are throttled per client
(`adrcs.serve.auth_limit`): past ``config.auth_max_failures`` per ``config.auth_window_s`` a client gets 429.
Through `adrcs.serve.shared_limits` the failures also count across replicas, and each token
may make at most ``config.rate_limit`` requests per minute (0: no limit)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from adrcs.serve.auth_limit import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_S, FailedAuthLimiter, client_key
from adrcs.serve.shared_limits import shared_limits
from adrcs.serve.store import ROLES, hash_token

INSPECTOR, ENGINEER, ADMIN = ROLES


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's name and role."""

    name: str
    role: str


def token_from_headers(authorization: str | None, api_token: str | None) -> str | None:
    """The token from an ``Authorization: Bearer`` value, else from ``X-API-Token``."""
    auth = authorization or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return api_token or None


def token_from(request: Request) -> str | None:
    """The token of a request, from the Authorization header (Bearer) or X-API-Token."""
    return token_from_headers(request.headers.get("authorization"), request.headers.get("x-api-token"))


async def _check(state: Any, token: str) -> tuple[str, str] | None:
    """`Store.check_token`, remembered for `config.token_cache_s` seconds: a cached token is checked on the
    event loop with no DB round trip; a lookup runs in a worker thread."""
    ttl = float(getattr(getattr(state, "config", None), "token_cache_s", 0.0) or 0.0)
    if ttl <= 0:
        return await run_in_threadpool(state.store.check_token, token)
    key = hash_token(token)
    now = time.monotonic()
    hit = state.token_cache.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    found = await run_in_threadpool(state.store.check_token, token)
    if len(state.token_cache) > 10_000:
        state.token_cache.clear()
    state.token_cache[key] = (now, found)
    return found


def auth_limiter(state: Any) -> FailedAuthLimiter | None:
    """The app's failed-check limiter (``state.auth_limiter``), made on first use from
    ``state.config.auth_max_failures`` (default 10; 0 turns throttling off) and ``auth_window_s`` (60)."""
    limiter = getattr(state, "auth_limiter", None)
    if limiter is None:
        config = getattr(state, "config", None)
        n = getattr(config, "auth_max_failures", DEFAULT_MAX_FAILURES)
        if n is None or int(n) <= 0:
            limiter = False  # remembered: throttling is off
        else:
            limiter = FailedAuthLimiter(int(n), float(getattr(config, "auth_window_s", None) or DEFAULT_WINDOW_S))
        state.auth_limiter = limiter
    return None if limiter is False else limiter  # (an empty limiter is falsy: it has a length)


async def authorize(state: Any, token: str | None, role: str, *, client: str | None = None) -> Caller:
    """The caller of `token` (checked against ``state.store``); HTTPException 401 without a valid token,
    403 when its role is below `role`, 429 (with ``Retry-After``) while `client` (its address) has used up
    its failed checks: then the token is not even looked at."""
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API token (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
    limiter = auth_limiter(state)
    shared = shared_limits(state) if hasattr(state, "store") else None  # counted across replicas too
    if limiter is not None and (wait := limiter.retry_after(client) or (
            shared.auth.retry_after(client_key(client)) if shared is not None else 0)):
        raise _too_many(f"too many failed token checks from this client: retry in {wait} s", wait)
    found = await _check(state, token)
    if found is None:
        if limiter is not None:
            limiter.failed(client)
            if shared is not None:
                shared.auth.hit(client_key(client))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API token",
                            headers={"WWW-Authenticate": "Bearer"})
    name, have = found
    if ROLES.index(have) < ROLES.index(role):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {have!r} may not do this (needs {role!r})")
    if shared is not None and shared.tokens.limit > 0:
        if wait := shared.tokens.retry_after(name):
            raise _too_many(f"this token's rate limit ({shared.tokens.limit} requests per minute) is used up: "
                            f"retry in {wait} s", wait)
        shared.tokens.hit(name)
    return Caller(name, have)


def _too_many(detail: str, wait: int) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail, headers={"Retry-After": str(wait)})


def require(role: str) -> Callable[[Request], Awaitable[Caller]]:
    """FastAPI dependency: 401 without a valid token, 403 when its role is below `role`."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    async def dependency(request: Request) -> Caller:  # async: no thread hop per request
        client = request.client
        return await authorize(request.app.state, token_from(request), role,
                               client=client.host if client is not None else None)

    return dependency
