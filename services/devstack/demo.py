"""The demo a local run creates on its first start, through the platform's own gRPC APIs.

The tenants service invites the first platform admin into the outbox (ADMIN_EMAIL); the launcher signs
that admin up, the admin invites a demo client as the owner of a new "Demo" tenant, and the client gets a
PPP Vishva bot (moderate template) on SOLUSDT, trading on paper, that starts at once. Passwords are
made up on the first start and kept, with everything else needed again, in `<data>/demo.json` (mode
0600). Every step first checks whether it was done already (a sign-in that works, a bot created with a
fixed request id), so a second start, or a start after one that was interrupted, creates nothing twice.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from email import message_from_bytes
from pathlib import Path

import grpc
from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as tp
from tradebot.tenants.v1 import tenants_service_pb2_grpc as tp_rpc

ADMIN_EMAIL = "admin@tradebot.local"
DEMO_EMAIL = "demo@tradebot.local"
DEMO_TENANT = "Demo"
DEMO_BOT = "demo-ppp-vishva"
SYMBOL = "SOLUSDT"
TEMPLATE = "moderate"
CAPITAL = "10000"
# The demo bot trades on the paper account execution opens for the tenant on the simulator, so the
# demo needs no exchange key (docs/decisions/0036-execution-paper-trading.md).
MODE = common.TRADING_MODE_PAPER


@dataclass
class DemoLogins:
    """What a person needs to sign in, kept between runs in demo.json."""

    admin_email: str
    admin_password: str
    email: str
    password: str

    @classmethod
    def load_or_create(cls, path: Path) -> DemoLogins:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        logins = cls(ADMIN_EMAIL, _password(), DEMO_EMAIL, _password())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(logins), handle)
        return logins


@dataclass
class Demo:
    logins: DemoLogins
    tenant_id: str
    bot: sp.Bot
    created: bool  # True on the start that created the demo tenant

    @property
    def mode(self) -> int:
        return int(self.bot.mode)


def _password() -> str:
    return f"Tb-{secrets.token_urlsafe(12)}"


def _meta(tokens: tp.AuthTokens) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {tokens.access_token}"),)


class DemoSeed:
    """Creates (or finds) the admin, the demo client and their bot against running services."""

    def __init__(self, addresses: dict[str, str], outbox: Path, data: Path) -> None:
        self.tenants_channel = grpc.insecure_channel(addresses["tenants"])
        self.strategy_channel = grpc.insecure_channel(addresses["strategy"])
        self.tenants = tp_rpc.TenantsServiceStub(self.tenants_channel)
        self.strategy = sp_rpc.StrategyServiceStub(self.strategy_channel)
        self.outbox = outbox
        self.path = data / "demo.json"
        self.created = False  # whether this start created the demo tenant

    def close(self) -> None:
        self.tenants_channel.close()
        self.strategy_channel.close()

    def ensure(self) -> Demo:
        """The admin, the demo client and the running bot (called once every service is SERVING, which
        a service reports only once it can check access tokens)."""
        return self._ensure()

    def ensure_admin(self) -> DemoLogins:
        """Only the platform admin (where no demo bot can trade, e.g. on Bybit testnet)."""
        return self._admin()[0]

    def _admin(self) -> tuple[DemoLogins, tp.AuthTokens]:
        logins = DemoLogins.load_or_create(self.path)
        admin = self._login(logins.admin_email, logins.admin_password)
        if admin is None:
            invite = self._outbox_invite(logins.admin_email)
            admin = self._sign_up(invite, logins.admin_email, "Platform", logins.admin_password)
        return logins, admin

    def _ensure(self) -> Demo:
        logins, admin = self._admin()
        client = self._login(logins.email, logins.password)
        if client is None:
            invite = self.tenants.CreateInvite(
                tp.CreateInviteRequest(email=logins.email, new_tenant=True), metadata=_meta(admin), timeout=30
            )
            client = self._sign_up(invite.invite_token, logins.email, DEMO_TENANT, logins.password)
            self.created = True
        me = self.tenants.GetMe(tp.GetMeRequest(), metadata=_meta(client), timeout=30)
        bot = self.strategy.CreateBot(
            sp.CreateBotRequest(
                name=DEMO_BOT,
                strategy_id="ppp_vishva",
                template=TEMPLATE,
                category=common.CATEGORY_LINEAR,
                symbol=SYMBOL,
                interval=common.INTERVAL_1_HOUR,
                mode=MODE,
                capital_allocation=CAPITAL,
                request_id=f"{DEMO_BOT}-{common.TradingMode.Name(MODE)}",
            ),
            metadata=_meta(client),
            timeout=30,
        ).bot
        start = sp.StartBotRequest(bot_id=bot.id)
        bot = self.strategy.StartBot(start, metadata=_meta(client), timeout=30).bot
        return Demo(logins, me.tenant.id, bot, self.created)

    def _login(self, email: str, password: str) -> tp.AuthTokens | None:
        try:
            reply = self.tenants.Login(tp.LoginRequest(email=email, password=password), timeout=30)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                return None
            raise
        return reply.tokens

    def _sign_up(self, token: str, email: str, tenant_name: str, password: str) -> tp.AuthTokens:
        try:
            reply = self.tenants.SignUp(
                tp.SignUpRequest(
                    invite_token=token,
                    email=email,
                    password=password,
                    display_name=email.split("@", maxsplit=1)[0].capitalize(),
                    tenant_name=tenant_name,
                ),
                timeout=30,
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.ALREADY_EXISTS:
                raise RuntimeError(
                    f"{email} exists but its password is not the one in {self.path}: the data folder "
                    "was partly removed; remove it all to start afresh"
                ) from None
            raise
        return reply.tokens

    def _outbox_invite(self, email: str, timeout: float = 30.0) -> str:
        """The invite code of the newest invitation to `email` that the tenants service wrote."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
            for path in mails:
                message = message_from_bytes(path.read_bytes())
                if message["To"] == email:
                    body = bytes(message.get_payload(decode=True)).decode()
                    return body.split("invite code on the sign-up page: ")[1].split()[0]
            time.sleep(0.2)
        raise RuntimeError(
            f"no invitation for {email} in {self.outbox}: the tenants service did not invite the first "
            "admin (is another admin email configured?)"
        )
