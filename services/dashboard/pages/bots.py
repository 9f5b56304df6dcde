"""Bots: create from a template, edit parameters (form generated from the strategy's schema, with
warnings), start, pause, stop and delete with confirmation (stop and delete wait a few seconds for an
undo), and the tenant kill switch's release. Viewers see the bots but no control."""

from __future__ import annotations

import uuid
from typing import Any

import streamlit as st
from google.protobuf.field_mask_pb2 import FieldMask
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2 as sp

from services.dashboard import params_form, pickers, session, widgets
from services.dashboard.client import Api, PlatformError

user = session.require()
api = session.api()


def start(api: Api, bot: se.Bot, code: str) -> str:
    api.strategy.StartBot(sp.StartBotRequest(bot_id=bot.id, totp_code=code))
    return f"Bot {bot.name} started."


def stop(api: Api, bot: se.Bot, close: bool) -> str:
    api.strategy.StopBot(sp.StopBotRequest(bot_id=bot.id, close_position=close, reason="dashboard"))
    return f"Bot {bot.name} stopped" + (" and its position closed." if close else ".")


def delete(api: Api, bot: se.Bot) -> str:
    api.strategy.DeleteBot(sp.DeleteBotRequest(bot_id=bot.id))
    return f"Bot {bot.name} deleted."


def controls(bot: se.Bot) -> None:
    """The buttons of one bot, each behind a confirmation."""
    key = bot.id
    # Only the actions this status allows, side by side (on a phone one under another, without gaps).
    actions = [
        name
        for name, shown in (
            ("Start", bot.status != se.BOT_STATUS_RUNNING),
            ("Pause", bot.status == se.BOT_STATUS_RUNNING),
            ("Stop", bot.status in (se.BOT_STATUS_RUNNING, se.BOT_STATUS_PAUSED)),
            ("Delete", bot.status in (se.BOT_STATUS_CREATED, se.BOT_STATUS_STOPPED)),
        )
        if shown
    ]
    for column, name in zip(st.columns(len(actions)), actions, strict=True):
        if column.button(name, key=f"{name.lower()}:{key}"):
            widgets.ask_confirmation(f"{name.lower()}:{key}")

    if st.session_state.get(f"confirm:start:{key}"):
        live = bot.mode == common.TRADING_MODE_LIVE
        code = session.reauthenticate(f"start:{key}") if live else ""
        if code is not None and widgets.confirm(
            f"start:{key}", f"Start {bot.name} ({'real money' if live else 'paper'})?", "Yes, start"
        ):
            with widgets.shown_errors():
                st.session_state.setdefault("done", []).append(("ok", start(api, bot, code)))
                st.rerun()
    if widgets.confirm(f"pause:{key}", f"Pause {bot.name}? Its open position stays protected.", "Yes, pause"):
        with widgets.shown_errors():
            api.strategy.PauseBot(sp.PauseBotRequest(bot_id=bot.id, reason="dashboard"))
            st.rerun()
    if st.session_state.get(f"confirm:stop:{key}"):
        close = st.checkbox("Also close its position at market", key=f"close:{key}")
        if widgets.confirm(f"stop:{key}", f"Stop {bot.name}?", "Yes, stop"):
            widgets.schedule(f"Stopping {bot.name}", lambda: stop(api, bot, close))
            st.rerun()
    if widgets.confirm(
        f"delete:{key}", f"Delete {bot.name}? Its orders and fills stay in History.", "Yes, delete"
    ):
        widgets.schedule(f"Deleting {bot.name}", lambda: delete(api, bot))
        st.rerun()


def editor(bot: se.Bot, strategy: sp.Strategy) -> None:
    with st.form(f"edit:{bot.id}"):
        name = st.text_input("Name", value=bot.name, key=f"edit_name:{bot.id}")
        capital = st.text_input("Capital allocation", value=bot.capital_allocation, key=f"edit_cap:{bot.id}")
        values = params_form.render(
            strategy, {k: params_form.plain(v) for k, v in bot.parameters.items()}, bot.id
        )
        for warning in params_form.warnings(values, bot.mode, capital):
            st.warning(warning)
        if st.form_submit_button("Save changes"):
            changed = se.Bot(name=name.strip(), capital_allocation=capital.strip())
            for k, v in values.items():
                changed.parameters[k].CopyFrom(v)
            with widgets.shown_errors():
                api.strategy.UpdateBot(
                    sp.UpdateBotRequest(
                        bot_id=bot.id,
                        bot=changed,
                        update_mask=FieldMask(paths=["name", "capital_allocation", "parameters"]),
                    )
                )
                st.success("Saved: a running bot uses the new parameters from its next candle.")


def bot_card(bot: se.Bot, strategies: dict[str, sp.Strategy]) -> None:
    with st.container(border=True):
        st.markdown(
            f"**{bot.name}** · {bot.symbol} · {pickers.interval_name(bot.interval)} · "
            f"{widgets.label(common.TradingMode, bot.mode)} · **{widgets.label(se.BotStatus, bot.status)}**"
        )
        if bot.status_message:
            st.caption(bot.status_message)
        if user.can_trade:
            controls(bot)
            strategy = strategies.get(bot.strategy_id)
            if strategy is not None and st.toggle("Edit parameters", key=f"edit:{bot.id}"):
                editor(bot, strategy)


def create_form(strategies: dict[str, sp.Strategy]) -> None:
    strategy_id = st.selectbox(
        "Strategy", list(strategies), format_func=lambda s: strategies[s].name, key="new_strategy"
    )
    strategy = strategies[strategy_id]
    st.caption(strategy.description)
    templates = [t.name for t in strategy.templates]
    default = templates.index(strategy.default_template) if strategy.default_template in templates else 0
    template = st.selectbox("Template", templates, index=default, key="new_template")
    chosen = next((t for t in strategy.templates if t.name == template), None)
    if chosen is not None:
        st.caption(chosen.description)
    left, right = st.columns(2)
    name = left.text_input("Name", key="new_name")
    symbol = right.text_input("Symbol", value="SOLUSDT", key="new_symbol").strip().upper()
    category = left.selectbox("Market", ["Perpetual (linear)", "Spot"], key="new_category")
    interval = pickers.interval(right, "new_interval")
    mode = pickers.mode(left, "new_mode")
    capital = right.text_input("Capital allocation (quote coin)", value="1000", key="new_capital")
    values = params_form.render(strategy, params_form.starting_values(strategy, template), f"new:{template}")
    for warning in params_form.warnings(values, mode, capital):
        st.warning(warning)
    if st.button("Create bot", type="primary", key="create_bot"):
        request = sp.CreateBotRequest(
            name=name.strip(),
            strategy_id=strategy_id,
            template=template,
            category=common.CATEGORY_SPOT if category == "Spot" else common.CATEGORY_LINEAR,
            symbol=symbol,
            interval=interval,
            mode=mode,
            capital_allocation=capital.strip(),
            request_id=st.session_state.setdefault("new_request_id", uuid.uuid4().hex),
        )
        for k, v in values.items():
            request.parameters[k].CopyFrom(v)
        with widgets.shown_errors():
            reply = api.strategy.CreateBot(request)
            st.session_state.pop("new_request_id", None)
            st.session_state.setdefault("done", []).append(("ok", f"Bot {reply.bot.name} created."))
            st.rerun()


def kill_switch_panel() -> None:
    try:
        switches = api.execution.ListKillSwitches(ex.ListKillSwitchesRequest()).kill_switches
    except PlatformError:
        return
    for switch in switches:
        if not switch.engaged:
            continue
        scope = widgets.label(ex.KillSwitchScope, switch.scope)
        closing = " Open positions are being closed until it is released." if switch.close_positions else ""
        since = widgets.when(switch.change_time)
        st.error(f"Kill switch ({scope}) is on since {since}: {switch.reason.rstrip('.')}.{closing}")
        if switch.scope == ex.KILL_SWITCH_SCOPE_TENANT and user.can_trade:
            if st.button("Release the emergency stop", key="release"):
                widgets.ask_confirmation("release")
            if st.session_state.get("confirm:release"):
                code = session.reauthenticate("release")
                if code is not None and widgets.confirm(
                    "release", "Release it? Stopped bots stay stopped until you start them.", "Yes, release"
                ):
                    with widgets.shown_errors():
                        api.execution.SetKillSwitch(
                            ex.SetKillSwitchRequest(
                                scope=ex.KILL_SWITCH_SCOPE_TENANT,
                                engaged=False,
                                reason="released",
                                totp_code=code,
                            )
                        )
                        st.rerun()


st.title("Bots")
kill_switch_panel()
strategies: dict[str, Any] = {}
with widgets.shown_errors():
    strategies = {s.id: s for s in api.strategy.ListStrategies(sp.ListStrategiesRequest()).strategies}
    bots = api.strategy.ListBots(sp.ListBotsRequest(page_size=200)).bots
    if not bots:
        st.caption("No bots yet.")
    for bot in bots:
        bot_card(bot, strategies)
if strategies and user.can_trade:
    st.subheader("New bot")
    create_form(strategies)
elif strategies:
    st.caption("Your role can watch bots but not change them.")
