"""The dashboard in a real browser (headless Chromium through Playwright) against the running platform:
the dashboard process, tenants, marketdata, strategy and execution as real processes, and the exchange
simulator. A new client signs in, sees the overview, stores a simulator exchange key on the Account page,
creates a live bot from a template and starts it two candles before the replay's next entry of that
template (tests/dashboard/replay.py); the bot's order reaches the exchange and the overview lists it; the
bot is stopped. Then every page is walked (nothing may overflow sideways, the emergency stop-all stays
one tap away) and the stop-all is tapped. Once at a desktop width and once at a phone's, with a
screenshot after every step in test-artifacts/dashboard/.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as xe
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from tests.dashboard.conftest import PASSWORD, Member, Slice
from tests.dashboard.replay import LEAD_CANDLES, next_entry_bar
from tests.helpers.clients import open_account

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
TEMPLATE, SYMBOL = "aggressive", "SOLUSDT"
# From the bot's start to its entry the simulator runs at this pace (seconds per hourly candle): slow
# enough for marketdata, strategy and execution to keep up on a loaded machine. The slice's own pace
# is restored afterwards.
REPLAY_SECONDS_PER_CANDLE = 1.0
ORDER_WITHIN_SECONDS = 120.0
PAGES = ("Overview", "Performance", "Chart", "Bots", "Backtest", "History", "Account")

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

    def sign_in(self, member: Member) -> None:
        """Fill the sign-in form and wait for the overview."""
        form = self.page.get_by_test_id("stForm")
        form.get_by_label("Email", exact=True).fill(member.email)
        form.get_by_label("Password", exact=True).fill(PASSWORD)
        self.button("Sign in", form).click()
        expect(self.main().get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=WAIT_MS)


@contextmanager
def browsing(browser: Browser, name: str, viewport: ViewportSize, **options: Any) -> Iterator[Steps]:
    """A fresh browser context on one page; a screenshot named "failure" if the steps fail."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1, **options)
    steps = Steps(context.new_page(), name)
    try:
        yield steps
    except Exception:
        steps.shot("failure")
        raise
    finally:
        context.close()


def simulator_account(dash: Slice) -> dict[str, Any]:
    return open_account(dash.simulator, "browser test")


def admin(dash: Slice, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return dash.simulator.admin(path, body)


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


def first_order(dash: Slice, member: Member) -> Any:
    """The member's first live order once the exchange has answered it (it is written before it is
    sent); a risk decision not to place one fails at once with the platform's own words."""
    deadline = time.monotonic() + ORDER_WITHIN_SECONDS
    while time.monotonic() < deadline:
        orders = orders_of(dash, member)
        if orders and orders[-1].status != xe.ORDER_STATUS_PENDING_SUBMIT:
            return orders[-1]
        events = risk_events_of(dash, member)
        assert not events, f"the signal was not traded: {[e.message for e in events]}"
        time.sleep(0.5)
    return None


def tenant_switch_on(dash: Slice, member: Member) -> bool:
    with grpc.insecure_channel(dash.address("execution")) as channel:
        reply = ex_rpc.ExecutionServiceStub(channel).ListKillSwitches(
            ex.ListKillSwitchesRequest(), metadata=member.meta, timeout=5
        )
    return any(s.engaged and s.scope == ex.KILL_SWITCH_SCOPE_TENANT for s in reply.kill_switches)


def latest_orders(steps: Steps) -> Locator:
    """The overview's "Latest orders" table (the element after its heading)."""
    return steps.main().locator(
        "[data-testid=stElementContainer]:has(h3:has-text('Latest orders'))"
        " + [data-testid=stElementContainer] [data-testid=stDataFrame]"
    )


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_a_client_runs_a_bot_from_the_browser(dash: Slice, browser: Browser, width: str) -> None:
    owner = dash.new_tenant(f"browser-{width}")
    with browsing(browser, width, VIEWPORTS[width]) as steps:
        page = steps.page
        # Sign in.
        page.goto(dash.dashboard_url, wait_until="domcontentloaded")
        steps.says("Sign in to Tradebot")
        steps.shot("sign-in")
        steps.sign_in(owner)

        # The overview of the new tenant: no bots, no orders, the emergency stop within reach.
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
        steps.choose("Template", TEMPLATE)
        steps.fill("Name", name)
        steps.choose("Account", "Live")
        steps.says("This bot trades real money on your exchange account.")
        steps.shot("new-bot-form")
        steps.button("Create bot").click()
        steps.says(f"Bot {name} created.")
        card = steps.card(name)
        expect(card).to_contain_text("live · created")
        steps.shot("bot-created")

        # The replay is paused and moved to two candles before the template's next entry; the bot
        # starts (and warms up) there, then the clock runs until its order is on the exchange.
        clock = admin(dash, "clock", {"action": "pause"})
        try:
            per_candle = int(clock["minutes_per_candle"])
            entry = next_entry_bar(int(clock["minute"]), TEMPLATE, SYMBOL)
            ahead = entry - LEAD_CANDLES - int(clock["minute"]) // per_candle
            if ahead > 0:
                clock = admin(dash, "clock", {"action": "step", "candles": ahead})
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
            bot_id = bots_of(dash, owner)[0].id
            admin(dash, "clock", {"action": "speed", "seconds_per_candle": REPLAY_SECONDS_PER_CANDLE})
            admin(dash, "clock", {"action": "resume"})
            order = first_order(dash, owner)
        finally:
            admin(dash, "clock", {"action": "speed", "seconds_per_candle": dash.simulator.seconds_per_candle})
            admin(dash, "clock", {"action": "resume"})
        after = admin(dash, "clock")
        assert order is not None, (
            f"no order from candle {clock['minute'] // per_candle} to {after['minute'] // per_candle} "
            f"(entry expected at candle {entry}); signals: {[s.id for s in signals_of(dash, owner)]}"
        )
        assert order.bot_id == bot_id and order.symbol == SYMBOL
        assert order.exchange_order_id, f"the order never reached the exchange: {order.reject_reason}"
        on_exchange = admin(dash, f"accounts/{account['uid']}/orders")
        assert order.exchange_order_id in json.dumps(on_exchange)

        # The overview's live account lists the order (its data part refreshes by itself).
        steps.go("Overview")
        steps.main().get_by_test_id("stButtonGroup").get_by_text("Live", exact=True).click()
        steps.settle()
        expect(page.get_by_text("No orders yet.")).to_have_count(0, timeout=WAIT_MS)
        latest = latest_orders(steps)
        expect(latest).to_be_visible()
        # The table is drawn on a canvas; its cells are also in the DOM for screen readers. One row is
        # this order (side, quantity, symbol); a stop or target may have added a newer one.
        side = "buy" if order.side == common.SIDE_BUY else "sell"
        shown = latest.locator("td").filter(has_text=re.compile(rf"^{side} {order.qty} {SYMBOL}$"))
        expect(shown.first).to_be_attached(timeout=WAIT_MS)
        # Every column fits the screen: no table of the overview needs scrolling sideways.
        scrollers = steps.main().locator("[data-testid=stDataFrame] .dvn-scroller")
        expect(scrollers.first).to_be_attached()
        widths = scrollers.evaluate_all("all => all.map(e => e.scrollWidth - e.clientWidth)")
        assert max(widths) <= 1, f"an overview table is wider than the {width} screen: {widths}"
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

        # Every page at this width: nothing wider than the screen, the stop-all within reach at the top.
        for title in PAGES:
            steps.go(title)
            steps.main().evaluate("main => main.scrollTo(0, 0)")
            overflow = page.evaluate(
                "() => [document.documentElement, document.querySelector('[data-testid=stMain]')]"
                ".map(e => e.scrollWidth - e.clientWidth)"
            )
            assert max(overflow) <= 1, f"{title} is wider than the {width} screen by {max(overflow)} px"
            expect(steps.button("STOP ALL BOTS")).to_be_in_viewport()
            steps.shot(f"page-{title.lower()}")

        # The emergency stop-all: one tap, and the tenant's kill switch is on.
        steps.button("STOP ALL BOTS").click()
        steps.says("Emergency stop is on")
        assert tenant_switch_on(dash, owner)
        steps.shot("stopped-all")


def test_an_owner_downloads_their_data_and_deletes_the_account(dash: Slice, browser: Browser) -> None:
    """The data rights end to end in a browser: the JSON file really downloads, and after the typed
    name the organisation is gone and the browser is back on the sign-in page with the reason."""
    owner = dash.new_tenant("leaving-browser")
    with browsing(browser, "data-rights", VIEWPORTS["desktop"], accept_downloads=True) as steps:
        page = steps.page
        page.goto(dash.dashboard_url, wait_until="domcontentloaded")
        steps.sign_in(owner)
        steps.go("Account")
        page.get_by_role("tab", name="Your data").click()
        steps.settle()
        tenant_name = owner_tenant_name(dash, owner)
        steps.says(f"Deletes the organisation “{tenant_name}”")
        # One password confirmation counts for both actions for a few minutes.
        page.get_by_label("Confirm with your password", exact=True).filter(visible=True).first.fill(PASSWORD)
        page.keyboard.press("Enter")
        steps.settle()
        steps.button("Prepare my data").click()
        steps.settle()
        with page.expect_download(timeout=WAIT_MS) as download:
            steps.button("Download my data").click()
        saved = Path(download.value.path())
        document = json.loads(saved.read_text())
        assert document["tenant"]["name"] == tenant_name and document["users"][0]["email"] == owner.email
        assert download.value.suggested_filename.endswith(".json")
        steps.shot("data-downloaded")

        steps.fill(f"Type the organisation's name, {tenant_name}, to confirm", tenant_name)
        steps.button("Delete my account").click()
        expect(page.get_by_role("heading", name="Sign in to Tradebot")).to_be_visible(timeout=WAIT_MS)
        steps.says("Your organisation's account and its data were deleted.")
        steps.shot("account-deleted")
        with pytest.raises(grpc.RpcError):
            dash.tenants.GetMe(pb.GetMeRequest(), metadata=owner.meta, timeout=10)


def owner_tenant_name(dash: Slice, owner: Member) -> str:
    return str(dash.tenants.GetMe(pb.GetMeRequest(), metadata=owner.meta, timeout=10).tenant.name)
