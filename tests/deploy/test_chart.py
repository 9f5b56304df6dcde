"""The Helm chart and k8s/ manifests: values against the schema, hardened pods, Vault policies, settings.

No `helm` binary is needed. The chart's non-templated files are read directly (YAML through the
strict reader in yaml_subset, since PyYAML is not a dependency). When the Helm library
(`helm_python`, from the helm-python-sdk wheel) is importable, the chart is also rendered and
linted with Helm itself; otherwise those tests are skipped.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import jsonschema
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.yaml_subset import load, load_all

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tradebot"
TEMPLATES = CHART / "templates"
POLICIES = CHART / "files" / "vault-policies"
K8S = ROOT / "k8s"

GRPC_SERVICES = ("tenants", "marketdata", "strategy", "execution")
COMPONENTS = (*GRPC_SERVICES, "dashboard", "exchangesim")
# Where each service's settings class lives (as in scripts/gen_settings_table.py).
SETTINGS_MODULES = {
    "tenants": "services.tenants.server",
    "marketdata": "services.marketdata.server",
    "strategy": "services.strategy.server",
    "execution": "services.execution.server",
    "dashboard": "services.dashboard.settings",
}
# Variables the chart sets that are not Tradebot settings but read by a library the services use:
# HOME (Streamlit and matplotlib caches), PGPASSWORD (libpq), OTEL_* (the OpenTelemetry SDK).
LIBRARY_VARIABLES = {"HOME", "PGPASSWORD"}
LIBRARY_PREFIXES = ("OTEL_",)


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = load((CHART / "values.yaml").read_text())
    return loaded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def component_config(all_values: dict[str, Any], name: str) -> dict[str, Any]:
    """What the chart's tradebot.config helper computes: whole keys replaced, env merged."""
    own = all_values[name]
    config = {**copy.deepcopy(all_values["default"]), **{k: v for k, v in own.items() if k != "env"}}
    config["env"] = {**all_values["default"].get("env", {}), **own.get("env", {})}
    return config


def settings_names() -> dict[str, set[str]]:
    """Upper-cased settings of every service, common ones included ("common" alone as well)."""
    from services.common.settings import ServiceSettings

    names = {"common": {name.upper() for name in ServiceSettings.model_fields}}
    for service, module in SETTINGS_MODULES.items():
        cls = importlib.import_module(module).Settings
        names[service] = {name.upper() for name in cls.model_fields}
    return names


def is_known(variable: str, allowed: set[str]) -> bool:
    return variable in allowed or variable in LIBRARY_VARIABLES or variable.startswith(LIBRARY_PREFIXES)


def errors_for(bad_values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema())
    return [error.message for error in validator.iter_errors(bad_values)]


# -- the schema --------------------------------------------------------------------------------------


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(schema())


def test_default_values_match_the_schema() -> None:
    assert errors_for(values()) == []


def _with(path: str, value: Any) -> dict[str, Any]:
    changed = values()
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("tenants.replicas", -1),
        ("default.replicas", -3),
        ("bybit.env", "production"),
        ("bybit.env", "Mainnet"),
        ("strategy.replicas", 2),  # scales by partition, not by plain replicas
        ("execution.autoscaling", {"enabled": True, "minReplicas": 2, "maxReplicas": 4}),
        ("marketdata.env", {"BACKFILL_CANDLE": "500"}),  # a typo of BACKFILL_CANDLES
        ("marketdata.env", {"BACKFILL_CANDLES": "-5"}),
        ("default.env", {"LOG_LEVEL": "verbose"}),
        ("execution.env", {"GRPC_PORT": "9000"}),  # the chart owns ports: probes depend on them
        ("tenants.env", {"VAULT_TOKEN": "s.abc"}),  # never a token in values
        ("strategy.env", {"MARKETDATA_DB_SCHEMA": "x"}),  # another service's setting
        ("ports.grpc", 70000),
        ("externalNats.url", "nats://nats.example:4222"),  # while nats.enabled is still true
        ("externalDatabase.url", "postgresql://tradebot:secret@db:5432/tradebot"),  # password in a URL
        ("tenant", {"enabled": True}),  # an unknown component
        ("dashboard.ingres", {"enabled": True}),
        ("default.image.pullPolicy", "Sometimes"),
    ],
)
def test_bad_values_are_rejected(path: str, value: Any) -> None:
    assert errors_for(_with(path, value)), f"{path}={value!r} was accepted"


def test_external_services_are_accepted_with_the_bundled_charts_off() -> None:
    external = values()
    external["nats"]["enabled"] = False
    external["externalNats"]["url"] = "nats://nats.messaging.svc:4222"
    external["postgresql"]["enabled"] = False
    external["externalDatabase"]["url"] = "postgresql://tradebot@db.example:5432/tradebot"
    external["externalDatabase"]["passwordSecret"] = {"name": "tradebot-db", "key": "password"}
    external["bybit"]["env"] = "testnet"
    external["exchangesim"]["enabled"] = False
    assert errors_for(external) == []


# -- every component ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_component_has_probes_resources_and_a_hardened_security_context(name: str) -> None:
    config = component_config(values(), name)
    assert set(config["probes"]) == {"startup", "readiness", "liveness"}
    assert config["resources"]["requests"]["cpu"] and config["resources"]["requests"]["memory"]
    assert config["resources"]["limits"]["memory"]
    container = config["securityContext"]
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert container["seccompProfile"]["type"] == "RuntimeDefault"
    assert config["podSecurityContext"]["runAsNonRoot"] is True
    assert config["podSecurityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert config["tmpSizeLimit"], "the read-only root needs the /tmp emptyDir"
    grace = float(config["env"].get("SHUTDOWN_GRACE_SECONDS", 10.0))
    assert config["terminationGracePeriodSeconds"] > grace


def test_probe_kinds_in_the_deployment_template() -> None:
    deployment = (TEMPLATES / "deployment.yaml").read_text()
    assert '"grpc" (dict "port"' in deployment, "gRPC services use the native grpc probe"
    assert '"/_stcore/health"' in deployment, "the dashboard is checked over HTTP"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe", "terminationGracePeriodSeconds"):
        assert probe in deployment
    assert "automountServiceAccountToken" in deployment
    assert "emptyDir" in deployment and "mountPath: /tmp" in deployment


def test_only_vault_users_mount_a_service_account_token() -> None:
    all_values = values()
    for name in COMPONENTS:
        uses_vault = component_config(all_values, name)["vault"]["auth"]
        assert uses_vault == (name in GRPC_SERVICES), name


def test_strategy_and_execution_start_with_one_replica() -> None:
    all_values = values()
    for name in ("strategy", "execution"):
        config = component_config(all_values, name)
        assert config["replicas"] == 1
        assert config["autoscaling"]["enabled"] is False


def test_only_execution_marketdata_and_tenants_reach_bybit() -> None:
    reach = {name for name in COMPONENTS if values()[name]["uses"]["bybit"]}
    # execution trades (and alone reads keys back); marketdata reads the public candles and tickers;
    # tenants checks a key with Bybit before storing it (else every key is refused as unchecked).
    assert reach == {"execution", "marketdata", "tenants"}


# -- Vault ---------------------------------------------------------------------------------------------


def test_every_vault_policy_is_loaded_and_belongs_to_a_component() -> None:
    policies = sorted(path.stem for path in POLICIES.glob("*.hcl"))
    assert policies, "no policies found"
    assert set(policies) <= set(COMPONENTS)
    glob = '.Files.Glob "files/vault-policies/*.hcl"'
    assert glob in (TEMPLATES / "vault-policies.yaml").read_text()
    assert glob in (TEMPLATES / "vault-configure-job.yaml").read_text()
    example = (K8S / "vault-roles.example.sh").read_text()
    loop = re.search(r"for service in ([a-z ]+); do", example)
    assert loop is not None and sorted(loop.group(1).split()) == policies


# -- files ---------------------------------------------------------------------------------------------


def non_templated_yaml() -> list[Path]:
    return [CHART / "Chart.yaml", CHART / "values.yaml", *sorted(K8S.glob("*.yaml"))]


def json_files() -> list[Path]:
    return [CHART / "values.schema.json", *sorted((CHART / "files").rglob("*.json"))]


@pytest.mark.parametrize("path", non_templated_yaml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_files_parse(path: Path) -> None:
    documents = load_all(path.read_text())
    assert documents and all(isinstance(document, dict) for document in documents)
    if path.parent == K8S:
        for document in documents:
            assert document["apiVersion"] and document["kind"] and document["metadata"]["name"]


@pytest.mark.parametrize("path", json_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_json_files_parse(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


def test_chart_declares_its_dependencies_without_vendoring_them() -> None:
    chart = load((CHART / "Chart.yaml").read_text())
    conditions = {dependency["name"]: dependency["condition"] for dependency in chart["dependencies"]}
    assert conditions == {"nats": "nats.enabled", "postgresql": "postgresql.enabled"}
    assert not (CHART / "charts").exists()
    assert (CHART / "templates" / "NOTES.txt").exists()


def test_grafana_dashboard_uses_the_exported_rpc_metric() -> None:
    dashboard = json.loads((CHART / "files" / "dashboards" / "tradebot-rpc.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert all("rpc_server_duration_seconds" in expr for expr in expressions)
    assert any("rpc_method" in expr for expr in expressions)
    assert any("rpc_code" in expr for expr in expressions)


# -- settings ------------------------------------------------------------------------------------------


def template_variables() -> set[str]:
    """Variable names written literally in the templates: ConfigMap keys and `- name:` entries."""
    found = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):", (TEMPLATES / "configmap.yaml").read_text(), re.M))
    for template in TEMPLATES.rglob("*.yaml"):
        found |= set(re.findall(r"- name: ([A-Z][A-Z0-9_]+)\s*$", template.read_text(), re.M))
    return found


def test_every_variable_the_chart_sets_is_a_real_setting() -> None:
    names = settings_names()
    every = set().union(*names.values())
    unknown = {variable for variable in template_variables() if not is_known(variable, every)}
    assert not unknown, f"not a setting of any service: {sorted(unknown)}"
    all_values = values()
    for name in COMPONENTS:
        allowed = names.get(name, set())  # exchangesim reads command-line options only
        config_env = set(all_values[name].get("env", {}))
        assert not {v for v in config_env if not is_known(v, allowed)}, name
    common_env = set(all_values["default"]["env"])
    assert not {v for v in common_env if not is_known(v, names["common"])}


def test_schema_env_names_are_settings_of_that_service() -> None:
    names = settings_names()
    properties = schema()["properties"]
    assert set(properties["default"]["properties"]["env"]["properties"]) <= names["common"]
    for name in COMPONENTS:
        env = properties[name]["properties"].get("env")
        if env is None:
            assert name == "exchangesim"
            continue
        assert set(env["properties"]) <= names[name], name


# -- the helm test script ------------------------------------------------------------------------------


def health_check_script() -> ModuleType:
    path = CHART / "files" / "helm-test" / "check_health.py"
    spec = importlib.util.spec_from_file_location("check_health", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(0)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/_stcore/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_helm_test_script_passes_when_everything_serves(
    grpc_health_server: tuple[str, health.HealthServicer], http_server: str
) -> None:
    address, servicer = grpc_health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    script = health_check_script()
    assert script.main([f"grpc={address}", f"http={http_server}/_stcore/health"], attempts=1) == 0


def test_helm_test_script_fails_on_not_serving_unreachable_or_bad_targets(
    grpc_health_server: tuple[str, health.HealthServicer], http_server: str
) -> None:
    address, servicer = grpc_health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    script = health_check_script()
    assert script.main([f"grpc={address}"], attempts=2, pause=0.01) == 1
    assert script.main(["grpc=127.0.0.1:1"], attempts=1) == 1
    assert script.main([f"http={http_server}/missing"], attempts=1) == 1
    assert script.main(["tcp=somewhere"], attempts=1) == 1


def test_helm_test_pod_checks_every_service() -> None:
    template = (TEMPLATES / "tests" / "test-health.yaml").read_text()
    assert "helm.sh/hook: test" in template
    assert 'include "tradebot.grpcServices"' in template
    assert "/_stcore/health" in template


# -- rendered by Helm itself (when the Helm library is installed) --------------------------------------

helm_python: Any = (
    importlib.import_module("helm_python") if importlib.util.find_spec("helm_python") is not None else None
)
needs_helm = pytest.mark.skipif(
    helm_python is None, reason="helm-python-sdk (the Helm library) is not installed"
)


def render(overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm_python.Chart.load(str(CHART))
    manifests = chart.render(overrides, name="demo", namespace="tradebot", is_install=True)
    documents = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for part in re.split(r"^---\s*$", text, flags=re.M):
            if part.strip() and not all(
                line.strip().startswith("#") for line in part.splitlines() if line.strip()
            ):
                documents.append(helm_python.values_from_yaml(part))
    return documents


@needs_helm
def test_helm_reads_values_as_the_subset_reader_does() -> None:
    for path in non_templated_yaml():
        for text, ours in zip(path.read_text().split("\n---\n"), load_all(path.read_text()), strict=True):
            assert helm_python.values_from_yaml(text) == ours, path


@needs_helm
def test_helm_lint_is_clean() -> None:
    report = helm_python.lint(str(CHART), strict=True, kube_version="v1.30.0")
    # Declared, not vendored: `helm dependency build` fetches them, so only that finding is expected.
    vendoring = "missing these dependencies"
    problems = [m for m in report["messages"] if m["severity"] >= 2 and vendoring not in m["error"]]
    assert problems == []
    assert [error for error in report["errors"] if vendoring not in error] == []


@needs_helm
def test_helm_rejects_bad_values_at_install() -> None:
    chart = helm_python.Chart.load(str(CHART))
    with pytest.raises(helm_python.HelmError):
        chart.render({"bybit": {"env": "production"}}, name="demo", namespace="tradebot")
    with pytest.raises(helm_python.HelmError, match="SHUTDOWN_GRACE_SECONDS"):
        chart.render({"default": {"env": {"SHUTDOWN_GRACE_SECONDS": "60"}}}, name="demo", namespace="t")


@needs_helm
@pytest.mark.parametrize(
    "overrides",
    [
        None,
        {
            "bybit": {"env": "mainnet"},
            "exchangesim": {"enabled": False},
            "nats": {"enabled": False},
            "externalNats": {"url": "nats://nats.messaging.svc:4222"},
            "postgresql": {"enabled": False},
            "externalDatabase": {
                "url": "postgresql://tradebot@db.example:5432/tradebot",
                "passwordSecret": {"name": "tradebot-db", "key": "password"},
            },
            "metrics": {"serviceMonitor": {"enabled": True}},
            "tenants": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}},
            "dashboard": {"ingress": {"enabled": True, "host": "trade.example.com"}},
            "vault": {"configure": {"enabled": True, "tokenSecret": {"name": "vault-admin"}}},
        },
    ],
    ids=["defaults", "external-mainnet"],
)
def test_rendered_chart(overrides: dict[str, Any] | None) -> None:
    documents = render(overrides)
    kinds = {document["kind"] for document in documents}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy", "Pod"} <= kinds
    names = settings_names()
    every = set().union(*names.values())
    configmaps = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ConfigMap"}
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert len(deployments) == (6 if overrides is None else 5)
    for deployment in deployments:
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert ("grpc" if component in GRPC_SERVICES else "httpGet") in container[probe]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["automountServiceAccountToken"] is (component in GRPC_SERVICES)
        settings = set(configmaps.get(deployment["metadata"]["name"], {}).get("data", {}))
        settings |= {entry["name"] for entry in container.get("env", [])}
        allowed = names.get(component, every)
        assert not {v for v in settings if not is_known(v, allowed)}, component
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    reaching_443 = {
        p["metadata"]["name"].rsplit("-", 1)[-1]
        for p in policies
        for rule in p["spec"].get("egress", [])
        if any(port.get("port") == 443 for port in rule["ports"])
    }
    assert reaching_443 == (set() if overrides is None else {"execution", "marketdata", "tenants"})


# Every gRPC call one service makes to another (the *_ADDR settings each one reads). A call the
# network policies do not allow works on a laptop and fails only in the cluster.
CALLS = {
    ("marketdata", "tenants"),
    ("strategy", "tenants"),
    ("strategy", "marketdata"),
    ("strategy", "execution"),
    ("execution", "tenants"),
    ("tenants", "strategy"),
    ("tenants", "execution"),
    *(("dashboard", callee) for callee in GRPC_SERVICES),
}


def _peers(rule: dict[str, Any]) -> set[str]:
    peers = rule.get("to", rule.get("from", []))
    labels = [p.get("podSelector", {}).get("matchLabels", {}) for p in peers]
    key = "app.kubernetes.io/component"
    return {label[key] for label in labels if key in label}


@needs_helm
def test_network_policies_allow_every_call_between_services_and_no_other() -> None:
    policies = {
        d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: d["spec"]
        for d in render(None)
        if d["kind"] == "NetworkPolicy"
    }
    grpc_port = values()["ports"]["grpc"]

    def on_grpc_port(rule: dict[str, Any]) -> bool:  # ingress names the container's port
        return any(port.get("port") in (grpc_port, "grpc") for port in rule.get("ports", []))

    egress = {
        (caller, callee)
        for caller, spec in policies.items()
        for rule in spec.get("egress", [])
        if on_grpc_port(rule)
        for callee in _peers(rule)
        if callee != caller and callee in GRPC_SERVICES
    }
    ingress = {
        (caller, callee)
        for callee, spec in policies.items()
        if callee in GRPC_SERVICES
        for rule in spec.get("ingress", [])
        if on_grpc_port(rule)
        for caller in _peers(rule)
        if caller in (*GRPC_SERVICES, "dashboard") and caller != callee
    }
    assert CALLS - egress == set(), "calls the callers' egress rules refuse"
    assert CALLS - ingress == set(), "calls the callees' ingress rules refuse"
    assert egress - CALLS == set() and ingress - CALLS == set(), "flows no service makes"
