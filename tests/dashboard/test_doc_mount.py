"""The documents' example of the dashboard mounted in an application of one's own, run as
written: its pages, links and actions live under the mount's path."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.test_docs import MOUNTED
from tests.worker.conftest import settings_env
from worker.protocol.settings import Settings


async def test_the_documented_mount_serves_every_page_under_its_path(
    deployment: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings_env(deployment).items():
        monkeypatch.setenv(name, value)
    scope: dict[str, Any] = {}
    exec(compile(MOUNTED, "docs/dashboard.md", "exec"), scope)  # the page's code, as written
    application = scope["application"]
    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as web,
    ):
        overview = await web.get("/taskstore/")
        assert overview.status_code == 200
        assert deployment.queue_name in overview.text
        links = set(re.findall(r'(?:href|src|action)="([^"]+)"', overview.text))
        assert links
        assert all(link.startswith("/taskstore/") for link in links), links
        for link in links:
            assert (await web.get(link)).status_code == 200, link
        assert "Path=/taskstore/;" in overview.headers["set-cookie"]  # the CSRF cookie
        assert (await web.get("/")).status_code == 404  # nothing outside the mount
