"""The dashboard in a real browser (headless Chromium through Playwright) against the running platform:
the dashboard process, tenants, marketdata, strategy and execution as real processes, and the exchange
simulator. A new client signs in, sees the overview, stores a simulator exchange key on the Account page,
creates a live bot from a template and starts it; the simulator's clock runs fast until the bot's first
signal becomes an order on the exchange, which the overview then lists; the bot is stopped. Once at a
desktop width and once at a phone's, with a screenshot after every step in test-artifacts/dashboard/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc

from tests.dashboard.conftest import PASSWORD, Member, Slice

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}
WAIT_MS = 20_000
# While a bot waits for its first signal the simulator runs this fast (seconds per hourly candle); the
# slice's own pace is restored afterwards.
FAST_SECONDS_PER_CANDLE = 0.15
OUTCOME_WITHIN_SECONDS = 90.0

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Steps:
    """One browser page of the dashboard with a screenshot after each step."""

    def __init__(self, page: Page, width: str) -> None:
        self.page, self.width, self.count = page, width, 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{width}-*.png"):
            old.unlink()

    def shot(self, name: str) -> None:
        """The whole page: Streamlit scrolls inside its own container, so the window is made as tall as
        the content for the picture (the width, which decides the layout, stays)."""
        self.settle()
        self.count += 1
        size = self.page.viewport_size
        assert size is not None
        tall = self.page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], section')]"
            ".map(e => e.scrollHeight), document.body.scrollHeight)"
        )
        self.page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(tall))})
        self.page.wait_for_timeout(200)
        self.page.screenshot(path=ARTIFACTS / f"{self.width}-{self.count:02d}-{name}.png")
        self.page.set_viewport_size(size)

    def settle(self) -> None:
        """Wait until Streamlit has finished the current run (its status widget says "Running...")."""
        self.page.wait_for_timeout(300)
        expect(self.page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)

    def main(self) -> Locator:
        return self.page.get_by_test_id("stMain")

    def go(self, title: str) -> None:
        """Open a page from the top navigation (collapsed into a menu on narrow screens)."""
        link = self.page.get_by_test_id("stTopNavLink").filter(has_text=title)
        if not link.first.is_visible():
            self.page.get_by_test_id("stExpandSidebarButton").click()
            link = self.page.get_by_test_id("stSidebarNavLink").filter(has_text=title)
        link.first.click()
        collapse = self.page.get_by_test_id("stSidebarCollapseButton")
        if collapse.is_visible():  # on a phone the menu stays open over the page after a choice
            collapse.get_by_role("button").click()
        expect(self.main().get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=WAIT_MS)
        self.settle()

    def fill(self, label: str, value: str, where: Locator | None = None) -> None:
        field = (where or self.main()).get_by_label(label, exact=True).filter(visible=True)
        field.fill(value)
        field.press("Enter")  # Streamlit takes a text input's value on Enter (or when it loses focus)
        self.settle()

    def choose(self, label: str, option: str, where: Locator | None = None) -> None:
        box = (where or self.main()).get_by_test_id("stSelectbox").filter(visible=True)
        combobox = box.filter(has=self.page.get_by_text(label, exact=True)).get_by_role("combobox")
        for attempt in range(3):  # a rerun finishing just then may close the list again
            combobox.click()
            try:
                self.page.get_by_role("option", name=option, exact=True).click(timeout=3000)
                break
            except PlaywrightTimeout:
                if attempt == 2:
                    raise
        self.settle()

    def card(self, bot_name: str) -> Locator:
        """A bot's bordered card on the Bots page: the innermost block with its name line."""
        return self.main().get_by_test_id("stVerticalBlock").filter(has_text=f"{bot_name} · SOLUSDT").last

    def button(self, name: str, where: Locator | None = None) -> Locator:
        return (where or self.main()).get_by_role("button", name=name, exact=True).filter(visible=True)

    def says(self, text: str | re.Pattern[str]) -> None:
        expect(self.page.get_by_text(text).first).to_be_visible(timeout=WAIT_MS)


def simulator_account(dash: Slice) -> dict[str, Any]:
    return admin(dash, "accounts", {"balances": {"USDT": "100000"}, "note": "browser test"})


def admin(dash: Slice, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{dash.simulator.url}/admin/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def orders_of(dash: Slice, member: Member) -> list[Any]:
    with grpc.insecure_channel(dash.address("execution")) as channel:
        reply = ex_rpc.ExecutionServiceStub(channel).ListOrders(
            ex.ListOrdersRequest(mode=common.TRADING_MODE_LIVE, page_size=10), metadata=member.meta, timeout=5
        )
    return list(reply.orders)


def bots_of(dash: Slice, member: Member) -> list[Any]:
    with grpc.insecure_channel(dash.address("strategy")) as channel:
        reply = sp_rpc.StrategyServiceStub(channel).ListBots(
            sp.ListBotsRequest(page_size=10), metadata=member.meta, timeout=5
        )
    return list(reply.bots)


def risk_events_of(dash: Slice, member: Member) -> list[Any]:
    with grpc.insecure_channel(dash.address("execution")) as channel:
        reply = ex_rpc.ExecutionServiceStub(channel).ListRiskEvents(
            ex.ListRiskEventsRequest(page_size=10), metadata=member.meta, timeout=5
        )
    return list(reply.events)


def signals_of(dash: Slice, member: Member) -> list[Any]:
    with grpc.insecure_channel(dash.address("strategy")) as channel:
        reply = sp_rpc.StrategyServiceStub(channel).ListSignals(
            sp.ListSignalsRequest(page_size=10), metadata=member.meta, timeout=5
        )
    return list(reply.signals)


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_a_client_runs_a_bot_from_the_browser(dash: Slice, browser: Browser, width: str) -> None:
    owner = dash.new_tenant(f"browser-{width}")
    context = browser.new_context(viewport=VIEWPORTS[width], device_scale_factor=1)
    page = context.new_page()
    steps = Steps(page, width)
    try:
        # Sign in.
        page.goto(dash.dashboard_url, wait_until="domcontentloaded")
        steps.says("Sign in to Tradebot")
        steps.shot("sign-in")
        form = page.get_by_test_id("stForm")
        form.get_by_label("Email", exact=True).fill(owner.email)
        form.get_by_label("Password", exact=True).fill(PASSWORD)
        steps.button("Sign in", form).click()

        # The overview of the new tenant: no bots, no orders, the emergency stop within reach.
        heading = steps.main().get_by_role("heading", name="Overview", exact=True)
        expect(heading).to_be_visible(timeout=WAIT_MS)
        steps.says("No paper bots yet: create one on the Bots page.")
        steps.says("No orders yet.")
        expect(steps.button("STOP ALL BOTS")).to_be_in_viewport()
        steps.shot("overview")

        # Account: store an exchange key (a fresh simulator account), after confirming the password.
        account = simulator_account(dash)
        steps.go("Account")
        steps.says("No exchange key stored. Paper trading needs none.")
        steps.fill("Confirm with your password", PASSWORD)
        keys = page.get_by_test_id("stForm").filter(visible=True)
        keys.get_by_label("API key", exact=True).fill(account["apiKey"])
        keys.get_by_label("API secret", exact=True).fill(account["apiSecret"])
        steps.button("Store key", keys).click()
        steps.says(re.compile(r"Key \S+ · "))
        steps.shot("account-key-stored")

        # Bots: a live bot from the "aggressive" template on SOLUSDT, hourly candles.
        steps.go("Bots")
        steps.says("No bots yet.")
        name = f"{width}-{uuid.uuid4().hex[:4]}"
        steps.choose("Template", "aggressive")
        steps.fill("Name", name)
        steps.choose("Account", "Live")
        steps.says("This bot trades real money on your exchange account.")
        steps.shot("new-bot-form")
        steps.button("Create bot").click()
        steps.says(f"Bot {name} created.")
        card = steps.card(name)
        expect(card).to_contain_text("live · created")
        steps.shot("bot-created")

        steps.button("Start", card).click()
        steps.settle()
        steps.says(f"Start {name} (real money)?")
        steps.shot("start-confirmation")
        steps.button("Yes, start", card).click()
        steps.says(f"Bot {name} started.")
        card = steps.card(name)
        expect(card).to_contain_text("live · running")
        steps.shot("bot-running")
        assert [(b.name, b.status) for b in bots_of(dash, owner)] == [(name, se.BOT_STATUS_RUNNING)]

        # The simulator runs fast until the bot's first signal has an outcome in execution: an order
        # (placed, or refused by the exchange) or a risk decision not to place one.
        bot_id = bots_of(dash, owner)[0].id
        before = admin(dash, "clock")
        admin(dash, "clock", {"action": "speed", "seconds_per_candle": FAST_SECONDS_PER_CANDLE})
        try:
            deadline = time.monotonic() + OUTCOME_WITHIN_SECONDS
            orders: list[Any] = []
            events: list[Any] = []
            while not (orders or events) and time.monotonic() < deadline:
                time.sleep(0.5)
                orders, events = orders_of(dash, owner), risk_events_of(dash, owner)
        finally:
            admin(dash, "clock", {"action": "speed", "seconds_per_candle": dash.simulator.seconds_per_candle})
        after = admin(dash, "clock")
        signals = signals_of(dash, owner)
        assert signals and all(s.bot_id == bot_id for s in signals), (
            f"no signal in simulated minutes {before['minute']} to {after['minute']}"
        )
        assert orders or events, f"no outcome of the signals {[s.id for s in signals]} within the time"

        # The overview's live account shows the outcome (its data part refreshes by itself): the order
        # in Latest orders, and anything refused under Needs attention in the platform's own words.
        steps.go("Overview")
        steps.main().get_by_test_id("stButtonGroup").get_by_text("Live", exact=True).click()
        steps.settle()
        if orders:
            order = orders[-1]
            assert order.bot_id == bot_id and order.symbol == "SOLUSDT"
            latest = steps.main().locator(
                "[data-testid=stElementContainer]:has(h3:has-text('Latest orders'))"
                " + [data-testid=stElementContainer] [data-testid=stDataFrame]"
            )
            expect(page.get_by_text("No orders yet.")).to_have_count(0, timeout=WAIT_MS)
            expect(latest).to_be_visible()
            if order.exchange_order_id:
                assert order.exchange_order_id in json.dumps(admin(dash, f"accounts/{account['uid']}/orders"))
            else:
                steps.says(order.reject_reason)
        else:
            assert events[0].bot_id == bot_id
            steps.says(events[0].message)
        steps.shot("overview-with-order")

        # Stop the bot: confirm, then its undo time passes.
        steps.go("Bots")
        card = steps.card(name)
        steps.button("Stop", card).click()
        steps.settle()
        steps.button("Yes, stop", card).click()
        steps.says(f"Stopping {name} in")
        steps.shot("stop-undo-window")
        steps.says(f"Bot {name} stopped.")
        steps.shot("bot-stopped")
        assert [(b.name, b.status) for b in bots_of(dash, owner)] == [(name, se.BOT_STATUS_STOPPED)]
    except Exception:
        steps.shot("failure")
        raise
    finally:
        context.close()
