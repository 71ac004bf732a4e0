"""Whose task it is: one owner per authenticated principal; anonymous callers only if allowed."""

from __future__ import annotations

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.shared.exceptions import MCPError

from store.keys import validate_id
from worker.mcp_tasks import owner_of


def as_caller(client_id: str, subject: str | None, issuer: str | None = None) -> str:
    token = AccessToken(
        token="t", client_id=client_id, scopes=[], subject=subject,
        claims={"iss": issuer} if issuer else None,
    )  # fmt: skip
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        return owner_of(allow_anonymous=False)
    finally:
        auth_context_var.reset(reset)


def test_one_owner_per_principal_and_a_valid_id() -> None:
    alice = as_caller("app", "alice", "https://issuer.example")
    assert alice == as_caller("app", "alice", "https://issuer.example")
    others = {
        as_caller("app", "bob", "https://issuer.example"),
        as_caller("other-app", "alice", "https://issuer.example"),
        as_caller("app", "alice", "https://elsewhere.example"),
        as_caller("app", None),
    }
    assert alice not in others
    assert len(others) == 4
    assert validate_id(alice) == alice


def test_anonymous_callers_share_one_owner_only_when_allowed() -> None:
    assert owner_of(allow_anonymous=True) == owner_of(allow_anonymous=True)
    with pytest.raises(MCPError) as err:
        owner_of(allow_anonymous=False)
    assert err.value.error.code == -32602
