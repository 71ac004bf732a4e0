"""Whose task it is: a stable hash of the authenticated principal.

The owner id is half of every task's key, so a caller reaches only the
tasks created under its own principal (client id, issuer, subject, as the
SDK's ``principal_components`` gives them). Callers without a token share
one owner only when the server allows anonymous callers.
"""

from __future__ import annotations

import hashlib

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import principal_components
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

ANONYMOUS = "anonymous"


def owner_of(allow_anonymous: bool) -> str:
    """The owner id of the caller of the request being served."""
    token = get_access_token()
    if token is None:
        if not allow_anonymous:
            raise MCPError(INVALID_PARAMS, "tasks need an authenticated caller")
        return ANONYMOUS
    principal = "\0".join(part or "" for part in principal_components(token))
    return "p-" + hashlib.sha256(principal.encode()).hexdigest()[:40]
