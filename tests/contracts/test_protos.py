"""Contract rules for proto/: what every service can rely on before it is built.

The protos are compiled with their comments (`--include_source_info`) and the rules are checked on the
descriptors. Each rule is a function returning the list of violations, so a failure names every
offender at once, and each rule is also run against a deliberately broken proto to prove it can fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import gen_api_docs as docs
import pytest
from google.protobuf import descriptor_pb2

FDS = descriptor_pb2.FileDescriptorSet
FDP = descriptor_pb2.FieldDescriptorProto

EXPECTED_RPCS: dict[str, set[str]] = {
    "tradebot.tenants.v1.TenantsService": {
        "SignUp",
        "Login",
        "RefreshToken",
        "Logout",
        "GetMe",
        "CreateInvite",
        "ListUsers",
        "SetUserRole",
        "EnrollTotp",
        "ConfirmTotp",
        "CreateApiToken",
        "ListApiTokens",
        "RevokeApiToken",
        "PutExchangeCredentials",
        "GetExchangeCredentialsStatus",
        "RotateExchangeCredentials",
        "DeleteExchangeCredentials",
        "GetSettings",
        "UpdateSettings",
        "ListTemplates",
        "ListAuditEvents",
        "VerifyAuditChain",
        "RecordAuditEvent",
        "ExportTenantData",
        "DeleteTenant",
        "GetJwks",
    },
    "tradebot.marketdata.v1.MarketDataService": {
        "ListInstruments",
        "GetCandles",
        "StreamCandles",
        "GetTicker",
        "EnsureSubscriptions",
    },
    "tradebot.strategy.v1.StrategyService": {
        "ListStrategies",
        "CreateBot",
        "UpdateBot",
        "GetBot",
        "ListBots",
        "StartBot",
        "PauseBot",
        "StopBot",
        "DeleteBot",
        "ListSignals",
        "RunBacktest",
        "GetBacktest",
        "ListBacktests",
        "ExportTenantData",
        "DeleteTenantData",
    },
    "tradebot.execution.v1.ExecutionService": {
        "ListOrders",
        "GetOrder",
        "CancelOrder",
        "ListFills",
        "ListPositions",
        "ClosePosition",
        "GetPnL",
        "GetAccountSummary",
        "GetRiskLimits",
        "SetRiskLimits",
        "SetKillSwitch",
        "ListRiskEvents",
        "ExportTenantData",
        "DeleteTenantData",
    },
}

# NATS payloads named in the design, by package.
EXPECTED_EVENTS: dict[str, set[str]] = {
    "tradebot.marketdata.v1": {"CandleClosed", "Ticker"},
    "tradebot.strategy.v1": {"Signal", "BotLifecycleEvent"},
    "tradebot.execution.v1": {"OrderEvent", "FillEvent", "PositionEvent", "WalletEvent", "RiskEvent"},
    "tradebot.tenants.v1": {"AuditEvent"},
}

# Service-only RPCs: platform services call them for a user who already passed step-up with tenants.
SERVICE_ONLY_RPCS = {
    f"tradebot.{name}.v1.{name.capitalize()}Service.{rpc}"
    for name in ("strategy", "execution")
    for rpc in ("ExportTenantData", "DeleteTenantData")
}

# RPCs that must carry the step-up `totp_code` field (service-only RPCs of the same name aside).
STEP_UP_RPCS = {
    "SetUserRole",
    "CreateApiToken",
    "PutExchangeCredentials",
    "RotateExchangeCredentials",
    "DeleteExchangeCredentials",
    "UpdateSettings",
    "ExportTenantData",
    "DeleteTenant",
    "StartBot",
    "SetRiskLimits",
    "SetKillSwitch",
}

# List RPCs over small, bounded sets that return everything in one response.
UNPAGED_LIST_RPCS = {"ListStrategies", "ListKillSwitches"}

# Scalar fields whose name says money, price or quantity; these must be decimal strings, not numbers.
MONEY_NAME = re.compile(
    r"(^|_)(price|prices|qty|notional|pnl|fee|fees|equity|balance|capital|turnover|volume|size"
    r"|stop_loss|take_profit|leverage|margin|upl|expectancy)(_|$)"
)
NOT_MONEY = {"page_size"}
NUMERIC_TYPES = {
    FDP.TYPE_DOUBLE,
    FDP.TYPE_FLOAT,
    FDP.TYPE_INT64,
    FDP.TYPE_UINT64,
    FDP.TYPE_INT32,
    FDP.TYPE_UINT32,
    FDP.TYPE_SINT32,
    FDP.TYPE_SINT64,
    FDP.TYPE_FIXED32,
    FDP.TYPE_FIXED64,
    FDP.TYPE_SFIXED32,
    FDP.TYPE_SFIXED64,
}


@pytest.fixture(scope="module")
def protos() -> FDS:
    return docs.compile_descriptor_set()


@pytest.fixture(scope="module")
def broken_protos(tmp_path_factory: pytest.TempPathFactory) -> FDS:
    """A proto that breaks every rule below once."""
    root = tmp_path_factory.mktemp("proto")
    folder = root / "tradebot" / "broken" / "v2"
    folder.mkdir(parents=True)
    (folder / "broken_service.proto").write_text(
        """syntax = "proto3";
package tradebot.elsewhere.v2;

service BrokenService {
  // Documented RPC reusing another RPC's messages.
  rpc GetThing(Thing) returns (Thing);
  rpc ListThings(ListThingsRequest) returns (ListThingsResponse);
  // Documented RPC.
  rpc SetThing(SetThingRequest) returns (SetThingResponse);
}

// A thing.
message Thing {
  // Price as a float.
  double price = 1;
  string undocumented = 2;
}

// Request without pagination.
message ListThingsRequest {
  // Tenant from the request, not the token.
  string tenant_id = 1;
}

// Response without a page token.
message ListThingsResponse {}

// Request with no step-up field.
message SetThingRequest {}

// Response.
message SetThingResponse {}

// Enum whose zero value is not UNSPECIFIED.
enum Colour {
  // Red.
  RED = 0;
  COLOUR_BLUE = 1;
}
""",
        encoding="utf-8",
    )
    return docs.compile_descriptor_set(root)


def files(descriptor_set: FDS) -> list[descriptor_pb2.FileDescriptorProto]:
    return [f for f in descriptor_set.file if f.package.startswith("tradebot.")]


def methods(
    descriptor_set: FDS,
) -> Iterator[tuple[descriptor_pb2.FileDescriptorProto, str, descriptor_pb2.MethodDescriptorProto]]:
    for file in files(descriptor_set):
        for service in file.service:
            for method in service.method:
                yield file, f"{file.package}.{service.name}", method


def messages_by_name(descriptor_set: FDS) -> dict[str, descriptor_pb2.DescriptorProto]:
    return {
        name: message
        for file in files(descriptor_set)
        for name, _, message in docs.walk_messages(file.message_type, file.package, (docs.FILE_MESSAGE,))
    }


def comment_of(descriptor_set: FDS, full_name: str) -> dict[str, str]:
    """Leading comments of a message's fields, by field name."""
    for file in files(descriptor_set):
        comments = docs.leading_comments(file)
        for name, path, message in docs.walk_messages(file.message_type, file.package, (docs.FILE_MESSAGE,)):
            if name == full_name:
                return {
                    field.name: comments.get((*path, docs.MESSAGE_FIELD, i), "")
                    for i, field in enumerate(message.field)
                }
    raise KeyError(full_name)


# --- rules: each returns a list of human-readable violations -------------------------------------------


def undocumented(descriptor_set: FDS) -> list[str]:
    """Every service, RPC, message, field, oneof, enum and enum value needs a leading comment."""
    missing: list[str] = []
    for file in files(descriptor_set):
        comments = docs.leading_comments(file)

        def need(
            path: tuple[int, ...],
            what: str,
            comments: dict[tuple[int, ...], str] = comments,
            file_name: str = file.name,
        ) -> None:
            if not comments.get(path):
                missing.append(f"{file_name}: {what}")

        for s_index, service in enumerate(file.service):
            s_path = (docs.FILE_SERVICE, s_index)
            need(s_path, f"service {service.name}")
            for m_index, method in enumerate(service.method):
                need((*s_path, docs.SERVICE_METHOD, m_index), f"rpc {service.name}.{method.name}")
        for name, path, message in docs.walk_messages(file.message_type, file.package, (docs.FILE_MESSAGE,)):
            need(path, f"message {name}")
            for f_index, field in enumerate(message.field):
                need((*path, docs.MESSAGE_FIELD, f_index), f"field {name}.{field.name}")
            for o_index, oneof in enumerate(message.oneof_decl):
                if not oneof.name.startswith("_"):  # proto3 `optional` makes synthetic oneofs
                    need((*path, docs.MESSAGE_ONEOF, o_index), f"oneof {name}.{oneof.name}")
        for name, path, enum in docs.walk_enums(file):
            need(path, f"enum {name}")
            for v_index, value in enumerate(enum.value):
                need((*path, docs.ENUM_VALUE, v_index), f"enum value {name}.{value.name}")
    return missing


def enum_naming(descriptor_set: FDS) -> list[str]:
    """Zero value is `<ENUM>_UNSPECIFIED`; every value is prefixed with the enum's UPPER_SNAKE name."""
    problems: list[str] = []
    for file in files(descriptor_set):
        for name, _, enum in docs.walk_enums(file):
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
            zero = [v.name for v in enum.value if v.number == 0]
            if zero != [f"{prefix}UNSPECIFIED"]:
                problems.append(f"{name}: zero value is {zero}, expected {prefix}UNSPECIFIED")
            problems += [
                f"{name}.{v.name}: not prefixed with {prefix}"
                for v in enum.value
                if not v.name.startswith(prefix)
            ]
    return problems


def rpc_message_naming(descriptor_set: FDS) -> list[str]:
    """Every RPC has its own `<Rpc>Request` and `<Rpc>Response`, used by no other RPC."""
    problems: list[str] = []
    used: dict[str, str] = {}
    for file, service, method in methods(descriptor_set):
        rpc = f"{service}.{method.name}"
        for kind, type_name in (("Request", method.input_type), ("Response", method.output_type)):
            expected = f".{file.package}.{method.name}{kind}"
            if type_name != expected:
                problems.append(f"{rpc}: {kind.lower()} is {type_name.lstrip('.')}, expected {expected[1:]}")
            if type_name in used:
                problems.append(f"{rpc}: {type_name.lstrip('.')} is also used by {used[type_name]}")
            used[type_name] = rpc
    return problems


def layout_problems(descriptor_set: FDS) -> list[str]:
    """Package = directory, ending in `.v1`; one `<Name>Service` per `<name>_service.proto`."""
    problems: list[str] = []
    for file in files(descriptor_set):
        directory = str(Path(file.name).parent).replace("/", ".")
        if file.package != directory:
            problems.append(f"{file.name}: package {file.package} does not match its directory")
        if not file.package.endswith(".v1"):
            problems.append(f"{file.name}: package {file.package} does not end in .v1")
        is_service_file = file.name.endswith("_service.proto")
        if file.service and not is_service_file:
            problems.append(f"{file.name}: services belong in a <name>_service.proto file")
        if is_service_file:
            stem = Path(file.name).stem.removesuffix("_service")
            names = [s.name for s in file.service]
            if len(names) != 1 or names[0].lower() != f"{stem}service":
                problems.append(f"{file.name}: expected exactly one service named like {stem}_service")
    return problems


def money_as_numbers(descriptor_set: FDS) -> list[str]:
    """Money, prices and quantities are decimal strings, never floats or integers."""
    return [
        f"{name}.{field.name} is numeric; money, prices and quantities are decimal strings"
        for name, message in messages_by_name(descriptor_set).items()
        for field in message.field
        if field.type in NUMERIC_TYPES and MONEY_NAME.search(field.name) and field.name not in NOT_MONEY
    ]


def tenant_from_request(descriptor_set: FDS) -> list[str]:
    """A request's `tenant_id` must be documented as Admin-only or Service-only."""
    problems: list[str] = []
    for name in messages_by_name(descriptor_set):
        if not name.endswith("Request"):
            continue
        comment = comment_of(descriptor_set, name).get("tenant_id")
        if comment is not None and not comment.startswith(("Admin-only", "Service-only")):
            problems.append(f"{name}.tenant_id: the tenant comes from the token unless Admin-/Service-only")
    return problems


def pagination_problems(descriptor_set: FDS) -> list[str]:
    """List RPCs take page_size/page_token and return next_page_token."""
    problems: list[str] = []
    messages = messages_by_name(descriptor_set)
    for _, service, method in methods(descriptor_set):
        if not method.name.startswith("List") or method.name in UNPAGED_LIST_RPCS:
            continue
        request = {f.name: f.type for f in messages[method.input_type.lstrip(".")].field}
        response = {f.name: f.type for f in messages[method.output_type.lstrip(".")].field}
        if request.get("page_size") != FDP.TYPE_INT32 or request.get("page_token") != FDP.TYPE_STRING:
            problems.append(f"{service}.{method.name}: request lacks int32 page_size / string page_token")
        if response.get("next_page_token") != FDP.TYPE_STRING:
            problems.append(f"{service}.{method.name}: response lacks string next_page_token")
    return problems


Rule = Callable[[FDS], list[str]]
RULES: list[Rule] = [
    undocumented,
    enum_naming,
    rpc_message_naming,
    layout_problems,
    money_as_numbers,
    tenant_from_request,
    pagination_problems,
]


# --- tests -----------------------------------------------------------------------------------------------


def test_every_proto_file_is_compiled(protos: FDS) -> None:
    on_disk = {str(p.relative_to(docs.PROTO_ROOT)) for p in docs.PROTO_ROOT.rglob("*.proto")}
    assert {f.name for f in files(protos)} == on_disk
    packages = {f.package for f in files(protos)}
    assert {
        f"tradebot.{s}.v1" for s in ("common", "tenants", "marketdata", "strategy", "execution")
    } <= packages


def test_expected_rpcs_exist(protos: FDS) -> None:
    present: dict[str, set[str]] = {}
    for _, service, method in methods(protos):
        present.setdefault(service, set()).add(method.name)
    missing = {s: sorted(rpcs - present.get(s, set())) for s, rpcs in EXPECTED_RPCS.items()}
    assert not any(missing.values()), missing


def test_streaming_rpcs(protos: FDS) -> None:
    streaming = {method.name for _, _, method in methods(protos) if method.server_streaming}
    assert streaming == {"StreamCandles", "RunBacktest"}
    assert not any(method.client_streaming for _, _, method in methods(protos))
    backtest = messages_by_name(protos)["tradebot.strategy.v1.RunBacktestResponse"]
    assert {f.name for f in backtest.field if f.HasField("oneof_index")} == {"progress", "report"}


def test_event_payloads_exist_and_name_their_subject(protos: FDS) -> None:
    found: dict[str, str] = {}
    for file in files(protos):
        if file.name.endswith("/events.proto"):
            comments = docs.leading_comments(file)
            for index, message in enumerate(file.message_type):
                found[f"{file.package}.{message.name}"] = comments.get((docs.FILE_MESSAGE, index), "")
    expected = {f"{package}.{name}" for package, names in EXPECTED_EVENTS.items() for name in names}
    assert expected <= found.keys(), f"missing from events.proto: {sorted(expected - found.keys())}"
    unnamed = [name for name in expected if not re.search(r"subject\s+`[a-z]+\.", found[name])]
    assert not unnamed, f"these payloads do not name their NATS subject: {unnamed}"


def test_step_up_rpcs_take_totp_code(protos: FDS) -> None:
    messages = messages_by_name(protos)
    lacking = [
        method.name
        for _, service, method in methods(protos)
        if method.name in STEP_UP_RPCS
        and f"{service}.{method.name}" not in SERVICE_ONLY_RPCS
        and "totp_code" not in {f.name for f in messages[method.input_type.lstrip(".")].field}
    ]
    assert not lacking


def enum_named(descriptor_set: FDS, full_name: str) -> tuple[descriptor_pb2.EnumDescriptorProto, list[str]]:
    """An enum and the leading comments of its values, in value order."""
    for file in files(descriptor_set):
        comments = docs.leading_comments(file)
        for name, path, enum in docs.walk_enums(file):
            if name == full_name:
                return enum, [comments.get((*path, docs.ENUM_VALUE, i), "") for i in range(len(enum.value))]
    raise KeyError(full_name)


def test_roles(protos: FDS) -> None:
    role, _ = enum_named(protos, "tradebot.tenants.v1.Role")
    assert {v.name for v in role.value} == {
        "ROLE_UNSPECIFIED",
        "ROLE_OWNER",
        "ROLE_TRADER",
        "ROLE_VIEWER",
        "ROLE_ADMIN",
    }


def test_interval_names_every_bybit_interval(protos: FDS) -> None:
    interval, comments = enum_named(protos, "tradebot.common.v1.Interval")
    bybit: set[str] = set()
    for index, value in enumerate(interval.value):
        if value.number:
            match = re.search(r'Bybit "(\w+)"', comments[index])
            assert match, f"{value.name} does not name its Bybit interval string"
            bybit.add(match.group(1))
    assert bybit == {"1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_rule_holds(protos: FDS, rule: Rule) -> None:
    assert rule(protos) == []


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_rule_catches_a_broken_proto(broken_protos: FDS, rule: Rule) -> None:
    assert rule(broken_protos) != []


def test_broken_proto_violations_are_named(broken_protos: FDS) -> None:
    assert "tradebot/broken/v2/broken_service.proto: rpc BrokenService.ListThings" in undocumented(
        broken_protos
    )
    assert any("Colour: zero value is ['RED']" in p for p in enum_naming(broken_protos))
    assert any("Thing.price is numeric" in p for p in money_as_numbers(broken_protos))


def test_api_docs_are_up_to_date(protos: FDS) -> None:
    committed = docs.OUTPUT.read_text(encoding="utf-8") if docs.OUTPUT.exists() else ""
    assert docs.render(protos) == committed, (
        "docs/api.md is stale: run `.venv/bin/python scripts/gen_api_docs.py` and commit the result"
    )
