"""What every RPC area shares: its dependencies and the caller check. The caller's tenant always comes
from the verified token; a request field never names another tenant, except SetKillSwitch's
admin-only `tenant_id`."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.auth import require_role
from services.common.context import Principal, Role, current_principal
from services.common.errors import InvalidArgument
from services.execution import risk
from services.execution.accounts import Accounts
from services.execution.closing import Closer
from services.execution.events import Events
from services.execution.flatten import Flattener
from services.execution.instruments import InstrumentCache
from services.execution.orders import OrderPlacer
from services.execution.stepup import StepUp
from services.execution.store import Store


@dataclass
class Deps:
    store: Store
    accounts: Accounts
    placer: OrderPlacer
    instruments: InstrumentCache
    events: Events
    caps: risk.Limits
    stepup: StepUp
    paper: Accounts | None = None  # PAPER accounts on the simulator (paper.py)
    closer: Closer = field(init=False)
    flattener: Flattener = field(init=False)

    def __post_init__(self) -> None:
        self.closer = Closer(self.store, self.placer, self.events)
        self.flattener = Flattener(self.store, self.closer, {"LIVE": self.accounts, "PAPER": self.paper})


class Base:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @staticmethod
    def caller(role: Role = Role.VIEWER) -> Principal:
        return require_role(current_principal(), role)

    @classmethod
    def tenant_of(cls, tenant_id: str) -> str:
        """The tenant a read is for: the caller's own, or the one a platform service names (strategy
        before it starts a bot or when it closes a stopped bot's position); a user's field is ignored."""
        principal = current_principal()
        if principal is not None and principal.role is Role.SERVICE:
            if not tenant_id:
                raise InvalidArgument("name the tenant a service asks for", field="tenant_id")
            return tenant_id
        return cls.caller().tenant_id
