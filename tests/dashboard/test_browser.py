"""The dashboard in a real browser: headless Chromium (Debian's), driven by Playwright,
against ``taskstore dashboard`` and a real worker. Each page is saved as a screenshot in
the test's temporary folder."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api", reason="playwright is not installed (dev extra)")

from playwright.async_api import Page, async_playwright

from store import BatchOp, make_key
from store.tasks.record import TaskRecord
from tests.dashboard.conftest import Served
from tests.dashboard.test_http import failed_job
from tests.harness import unique, until
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""What Chromium needs on a machine with no network beyond loopback."""
TASKS = 5000
DAY_MS = 86_400_000


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            yield await context.new_page()
        finally:
            await browser.close()


async def number(page: Page, selector: str) -> int:
    text = await page.text_content(selector)
    assert text is not None
    return int(text.replace(",", ""))


@pytest.mark.slow
async def test_an_operator_watches_retries_discards_and_pages_in_a_browser(
    deployment: Settings, served: Served, page: Page, screenshots: Path
) -> None:
    web = page
    owner = unique()
    async with TaskStoreClient.connect(deployment) as client:
        # The overview moves as writes go through: it refreshes by itself.
        await web.goto(served.url)
        before = await number(web, "#completed")
        await asyncio.gather(*(client.put(make_key(owner, f"w{i}"), b"x") for i in range(20)))
        for i in range(10):
            await client.put(make_key(owner, f"alone{i}"), b"x", coalesce=False)

        async def moved() -> bool:
            return await number(web, "#completed") > before

        await until(moved, 20)
        await web.screenshot(path=screenshots / "overview.png", full_page=True)

        await web.goto(served.url + "charts")
        legend = web.locator("li[data-series=completed] b")

        async def charted() -> bool:
            return (await legend.text_content()) not in ("0", "-")

        await until(charted, 20)
        await web.screenshot(path=screenshots / "charts.png", full_page=True)

        # A failed job, found by its error and retried: gone from the list, its write applied.
        retried_key, discarded_key = make_key(owner, "retried"), make_key(owner, "discarded")
        retried = await failed_job(deployment, retried_key)
        discarded = await failed_job(deployment, discarded_key)
        await web.goto(served.url + "failed")
        await web.fill("input[name=error]", "JobExecutionFailed")
        await web.click("form.filter button")
        assert await web.locator(f"tr[data-job='{retried}']").count() == 1
        await web.screenshot(path=screenshots / "failed.png", full_page=True)
        await web.click(f"tr[data-job='{retried}'] button.retry")
        assert "queued again" in (await web.text_content("#done") or "")
        assert await web.locator(f"tr[data-job='{retried}']").count() == 0

        async def applied() -> bool:
            try:
                return (await client.get(retried_key)).version == 1
            except Exception:
                return False

        await until(applied, 20)
        # Another discarded: gone, its write never applied.
        await web.click(f"tr[data-job='{discarded}'] button.discard")
        assert "discarded" in (await web.text_content("#done") or "")
        assert await web.locator(f"tr[data-job='{discarded}']").count() == 0

        # 5,000 tasks, paged through to the last.
        many = unique()
        now = await client.stores.backend.now_ms()
        started = [
            TaskRecord.started(f"t{i:05d}", many, "tools/call", now, DAY_MS) for i in range(TASKS)
        ]
        records = [
            BatchOp(make_key(many, r.task_id), r.to_bytes(), expires_at_ms=r.expires_at_ms)
            for r in started
        ]
        for start in range(0, TASKS, 1000):
            await client.stores.backend.apply_batch(records[start : start + 1000])
        await web.goto(f"{served.url}tasks?owner={many}")
        assert await number(web, "#live") == TASKS
        ttl_left = await web.locator("#tasks tbody tr td").nth(3).text_content()
        assert ttl_left is not None
        assert ttl_left.startswith("23 h"), ttl_left
        await web.screenshot(path=screenshots / "tasks.png", full_page=True)
        seen: set[str] = set()
        while True:
            ids = await web.locator("#tasks td.id").all_text_contents()
            seen.update(ids)
            older = web.locator("#next")
            if not await older.count():
                break
            await older.click()
        assert len(seen) == TASKS

        await web.goto(served.url + "settings")
        assert deployment.queue_name in (await web.text_content("#settings") or "")
        await web.screenshot(path=screenshots / "settings.png", full_page=True)
