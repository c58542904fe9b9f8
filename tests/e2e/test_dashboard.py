"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright) against a
running gateway with a canary route, its real controller and a drifting candidate.

Set DASHBOARD_SCREENSHOT=docs/img/dashboard.png to refresh the picture in the docs; the test
always takes one (into its tmp_path) and checks it is a PNG.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapter"))
from admin_harness import ROUTE, SECRET, CanaryGateway, canary_gateway, drifted
from playwright.async_api import Browser, Page, async_playwright

#: Debian's package (make test installs it); Playwright downloads no browser of its own.
CHROMIUM = "/usr/bin/chromium"
#: A page that shows nothing within this long fails the test (a poll is every 2 s).
WAIT_MS = 60_000
#: Polls on a plot before the docs' picture is taken.
POLLS_SHOWN = 15


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


async def evidence(gw: CanaryGateway, until: asyncio.Event) -> None:
    """Lookups through the gateway (shadowed to the drifting candidate) until ``until``."""
    while not until.is_set():
        await gw.lookups(5)
        await asyncio.sleep(0.1)


async def wide_plot(page: Page) -> None:
    """Until the first plot has POLLS_SHOWN points (the page's CSP forbids evaluating a
    script, so this reads the attribute)."""
    async with asyncio.timeout(WAIT_MS / 1000):
        while True:
            points = await page.get_attribute(".plot polyline", "points") or ""
            if len(points.split()) >= POLLS_SHOWN:
                return
            await asyncio.sleep(0.5)


def route_card(page: Page) -> str:
    return f'article.route[data-route="{ROUTE}"]'


async def test_the_dashboard_shows_the_route_and_its_pause_button_pauses_it(
    tmp_path: Path, browser: Browser
) -> None:
    """With #token= in the address: the route's weights, steps and gates, the shadow's differing
    field with a pseudonym; the token leaves the address bar and no URL carries it; pause
    pauses the route, as the API then says, under the token's name."""
    async with canary_gateway(tmp_path, candidate=drifted, interval="500ms") as gw:
        stop = asyncio.Event()
        traffic = asyncio.create_task(evidence(gw, stop))
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            urls: list[str] = []
            page.on("request", lambda request: urls.append(request.url))
            await page.goto(f"{gw.admin}/#token={SECRET}")
            card = route_card(page)
            await page.wait_for_selector(f"{card} table.gates tr[data-gate]", timeout=WAIT_MS)
            await page.wait_for_selector("#shadow .shadow-op", timeout=WAIT_MS)
            plotted = f"{card} .plot polyline[points*=' ']"  # two points at least
            await page.wait_for_selector(plotted, state="attached", timeout=WAIT_MS)
            assert SECRET not in page.url
            weights = await page.inner_text(f"{card} [data-field=weights]")
            assert "mainframe 100%" in weights
            assert "persons-v2 0%" in weights
            current = await page.inner_text(f'{card} .steps li[aria-current="step"]')
            assert current == "0%"
            verdict = await page.inner_text(f'{card} table.gates tr[data-gate="verdict"]')
            assert verdict.split() == ["verdict", "differs", "clean", "fail"]
            held = await page.inner_text(f"{card} [data-field=held]")
            assert held == "Held here: verdict differs (needs clean)"
            shadow = await page.inner_text("#shadow")
            assert "EFTERNVN" in shadow
            assert "Hansen-Berg" in shadow
            assert "0101601234" not in await page.content()  # the harness's PNR, never shown
            target = os.environ.get("DASHBOARD_SCREENSHOT")
            if target:  # for the docs: let the plots fill a little first
                await wide_plot(page)
            picture = tmp_path / "dashboard.png"
            await page.screenshot(path=str(picture), full_page=True)
            assert picture.read_bytes().startswith(b"\x89PNG")
            if target:
                shutil.copyfile(picture, target)

            await page.fill(f"{card} .controls input", "checking the drift")
            await page.click(f'{card} button[data-verb="pause"]')
            await page.wait_for_selector(f'{card}[data-status="paused"]', timeout=WAIT_MS)
        finally:
            stop.set()
            await traffic
        [route] = (await gw.call("GET", "/routes"))[1]["routes"]
        assert route["status"] == "paused"
        assert "checking the drift" in route["reason"]
        history = (await gw.call("GET", f"/routes/{ROUTE}/history"))[1]["history"]
        assert (history[-1]["kind"], history[-1]["who"]) == ("pause", "ops")
        assert not [url for url in urls if SECRET in url]


async def test_the_login_form_asks_again_for_a_refused_token(
    tmp_path: Path, browser: Browser
) -> None:
    """Without a token the page shows the form and no data; a wrong token is refused with a
    message; the right one shows the route."""
    async with canary_gateway(tmp_path) as gw:
        page = await browser.new_page()
        await page.goto(gw.admin + "/")
        assert await page.is_visible("#login")
        assert await page.locator("article.route").count() == 0
        await page.fill("#token", "not-the-token-of-this-gateway")
        await page.click("#login button[type=submit]")
        await page.wait_for_selector("#login-problem:has-text('refused')", timeout=WAIT_MS)
        await page.fill("#token", SECRET)
        await page.click("#login button[type=submit]")
        await page.wait_for_selector(route_card(page), timeout=WAIT_MS)
        assert not await page.is_visible("#login")
