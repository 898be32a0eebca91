"""deploy/helm/herald: lint, render and validate offline, then read it as an operator would.

helm comes from deploy/tools/helm.sh, which builds it once from the Go module proxy (about three
minutes; `make test` builds it before pytest, so here it is normally cached). The rendered
manifests are validated against the Kubernetes API schemas that kubernetes-validate ships.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import service
from service.config import variables

from .image_steps import ROOT, exposed_port, install_step

# The first test may build helm: allow for that here (every command below has its own limit).
pytestmark = pytest.mark.timeout(600)

HELM_SH = ROOT / "deploy" / "tools" / "helm.sh"
CHART = ROOT / "deploy" / "helm" / "herald"
KUBERNETES = "1.33.0"  # the API version rendered for and validated against (strict schemas)
# Kinds of operators' CRDs, which kubernetes-validate has no schema for: checked on their own.
CUSTOM_KINDS = {"PrometheusRule"}
RULES = ROOT / "deploy" / "prometheus" / "herald-alerts.yaml"

# What the chart may set: Herald's own variables (an unknown one stops it), and the
# OpenTelemetry exporter's endpoint.
KNOWN = {*variables(), "OTEL_EXPORTER_OTLP_ENDPOINT"}
INTERNAL_PATHS = ("/metrics", "/healthz", "/readyz")

SECRET_VALUES = {
    "jwtSecret": "jwt-secret-value-5b1f0c",
    "jwtPublicKey": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
    "-----END PUBLIC KEY-----\n",
    "kafkaSaslUsername": "herald-sasl-user-77a2",
    "kafkaSaslPassword": "sasl-password-value-93d4",
}

SECRET_1 = {"jwtSecret": SECRET_VALUES["jwtSecret"]}

# Every optional part on, secrets from a Secret the operator manages.
ALL_ON: dict[str, Any] = {
    "ingress": {"enabled": True, "tls": [{"secretName": "herald-tls", "hosts": ["h.example"]}]},
    "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
    "metrics": {"podAnnotations": True},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "podDisruptionBudget": {"enabled": True},
    "secrets": {
        "existingSecret": "herald-credentials",
        "existingSecretEntries": [
            "jwtSecret",
            "jwtPublicKey",
            "kafkaSaslUsername",
            "kafkaSaslPassword",
            "kafkaSslCa",
            "kafkaSslCert",
            "kafkaSslKey",
        ],
    },
    "config": {
        "HERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "HERALD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "HERALD_JWKS_URL": "https://id.example/jwks.json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
        "HERALD_PUBLIC_TOPICS": "news|status",
        "HERALD_ALLOWED_ORIGINS": "https://app.example",
    },
    "shutdownGraceSeconds": 7.5,
    "preStopSeconds": 3,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "all-on": ALL_ON,
    "secret-values": {"secrets": SECRET_VALUES},
}


@dataclass(frozen=True)
class Helm:
    binary: str
    env: dict[str, str]  # a private home: no repository or plugin of the machine's user

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.binary, *args], env=self.env, check=check)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm, built by deploy/tools/helm.sh if missing (minutes, once)."""
    built = subprocess.run(
        ["bash", str(HELM_SH)], capture_output=True, text=True, timeout=540, check=False
    )
    assert built.returncode == 0, built.stderr
    home = tmp_path_factory.mktemp("helm-home")
    env = {**os.environ} | {
        name: str(home / name.lower())
        for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
    }
    return Helm(built.stdout.strip(), env)


def run(
    command: list[str], *, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert result.returncode == 0, f"{command}: {result.stderr}"
    return result


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def template(helm: Helm, values: Path) -> subprocess.CompletedProcess[str]:
    return helm(
        "template",
        "herald",
        str(CHART),
        "--namespace",
        "herald",
        "--kube-version",
        KUBERNETES,
        "-f",
        str(values),
        check=False,
    )


@pytest.fixture(scope="module")
def rendered(
    helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Each variant's manifests, as text and as objects."""
    out = {}
    for name, values in VARIANTS.items():
        result = template(helm, values_file(tmp_path_factory.mktemp(name), values))
        assert result.returncode == 0, result.stderr
        out[name] = (result.stdout, [d for d in yaml.safe_load_all(result.stdout) if d])
    return out


def setting(variant: str, name: str) -> Any:
    """A top-level value as the variant renders it: its own, else the chart's default."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return VARIANTS[variant].get(name, defaults[name])


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{kind}: {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (herald,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return herald


def test_helm_sh_builds_once_then_only_prints_the_path(helm: Helm) -> None:
    before = Path(helm.binary).stat().st_mtime_ns
    again = run(["bash", str(HELM_SH)])
    assert again.stdout.strip() == helm.binary and again.stderr == ""
    assert Path(helm.binary).stat().st_mtime_ns == before
    version = run(["bash", str(HELM_SH), "version", "--short"], env=helm.env)
    assert version.stdout.startswith("v4.3.2")


@pytest.mark.parametrize(
    ("go", "message"),
    [
        (None, "helm.sh: 'go' not found: install Go >= 1.26 to build helm v4.3.2"),
        ("go1.19.8", "helm.sh: helm v4.3.2 needs Go >= 1.26 to build, found go1.19.8"),
    ],
)
def test_helm_sh_without_a_recent_go_says_so(tmp_path: Path, go: str | None, message: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "sort"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    if go is not None:
        (bin_dir / "go").write_text(f"#!/bin/sh\necho {go}\n")
        (bin_dir / "go").chmod(0o755)
    cache = tmp_path / "cache"
    env = {"PATH": str(bin_dir), "HELM_TOOLS_CACHE": str(cache)}
    result = run(["bash", str(HELM_SH), "version"], env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == message
    assert not cache.exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_strict(helm: Helm, tmp_path: Path, variant: str) -> None:
    values = values_file(tmp_path, VARIANTS[variant])
    result = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifests_are_valid_kubernetes(rendered: dict, variant: str) -> None:
    _, docs = rendered[variant]
    for doc in docs:
        if doc["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_strict_validation_rejects_an_unknown_field(rendered: dict) -> None:
    deployment = copy.deepcopy(one(rendered["defaults"][1], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_all_optional_parts_render(rendered: dict) -> None:
    kinds = sorted(d["kind"] for d in rendered["all-on"][1])
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
    ]
    assert not {"Ingress", "PrometheusRule"} & {d["kind"] for d in rendered["defaults"][1]}


def test_prometheus_rule_holds_the_alerting_rules(rendered: dict) -> None:
    rule = one(rendered["all-on"][1], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    labels = rule["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"
    assert labels["app.kubernetes.io/name"] == "herald"


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes(rendered: dict, variant: str) -> None:
    herald = container(rendered[variant][1])
    (port,) = herald["ports"]
    assert (port["name"], port["containerPort"]) == ("http", exposed_port())
    assert herald["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert herald["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_termination_outlasts_prestop_and_shutdown_grace(rendered: dict, variant: str) -> None:
    docs = rendered[variant][1]
    grace = setting(variant, "shutdownGraceSeconds")
    pre_stop = setting(variant, "preStopSeconds")
    config = one(docs, "ConfigMap")["data"]
    assert float(config["HERALD_SHUTDOWN_GRACE_S"]) == grace
    command = container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    assert re.fullmatch(r"import time; time\.sleep\((\d+)\)", command[2]).group(1) == str(pre_stop)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace + pre_stop


@pytest.mark.parametrize("variant", VARIANTS)
def test_runs_as_the_image_user_on_a_read_only_root(rendered: dict, variant: str) -> None:
    docs = rendered[variant][1]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    security = container(docs)["securityContext"]
    uid = install_step().uid
    for context in (pod["securityContext"], security):
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == uid
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    tmp = {v["name"]: v for v in pod["volumes"]}[
        {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}["/tmp"]
    ]
    assert "emptyDir" in tmp
    resources = container(docs)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def environment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every variable the container gets: the ConfigMap's (envFrom) and its own env."""
    herald = container(docs)
    (source,) = herald["envFrom"]
    assert source["configMapRef"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]
    env: dict[str, Any] = dict(one(docs, "ConfigMap")["data"])
    for variable in herald.get("env", []):
        assert variable["name"] not in env, f"{variable['name']} set twice"
        env[variable["name"]] = variable.get("value", variable.get("valueFrom"))
    return env


@pytest.mark.parametrize("variant", VARIANTS)
def test_sets_only_known_settings(rendered: dict, variant: str) -> None:
    docs = rendered[variant][1]
    names = set(environment(docs))
    assert names <= KNOWN, names - KNOWN
    # Nor Kubernetes' Docker-link variables: the Service "herald" would add HERALD_SERVICE_HOST.
    assert one(docs, "Service")["metadata"]["name"] == "herald"
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["enableServiceLinks"] is False
    assert (
        one(rendered[variant][1], "ConfigMap")["data"]["HERALD_BIND"] == f"0.0.0.0:{exposed_port()}"
    )


def test_secret_values_go_to_the_secret_only(rendered: dict) -> None:
    text, docs = rendered["secret-values"]
    secret = one(docs, "Secret")
    stored = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert sorted(stored.values()) == sorted(SECRET_VALUES.values())
    # Neither the values nor their base64 appear anywhere else, as rendered or as data.
    others = [d for d in text.split("\n---\n") if "\nkind: Secret\n" not in d]
    assert len(others) == len(docs) - 1
    others.append(yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"]))
    for value in SECRET_VALUES.values():
        needles = (max(value.splitlines(), key=len), base64.b64encode(value.encode()).decode())
        assert not [n for n in needles for other in others if n in other]
    env = environment(docs)
    name = secret["metadata"]["name"]
    for variable in ("HERALD_JWT_SECRET", "HERALD_KAFKA_SASL_USERNAME"):
        assert env[variable]["secretKeyRef"]["name"] == name
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["secrets"]["secret"]
    assert volume["secretName"] == name
    mount = {m["name"]: m for m in container(docs)["volumeMounts"]}["secrets"]
    assert mount["readOnly"] is True
    files = {item["key"]: f"{mount['mountPath']}/{item['path']}" for item in volume["items"]}
    assert set(files.values()) == {
        env["HERALD_JWT_PUBLIC_KEY"],
        env["HERALD_KAFKA_SASL_PASSWORD_FILE"],
    }
    # A changed Secret rolls the pods.
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" in annotations


def test_existing_secret_is_referenced_not_rendered(rendered: dict) -> None:
    docs = rendered["all-on"][1]
    assert not [d for d in docs if d["kind"] == "Secret"]
    env = environment(docs)
    referenced = {
        v["secretKeyRef"]["name"]
        for v in env.values()
        if isinstance(v, dict) and "secretKeyRef" in v
    }
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    referenced |= {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert referenced == {"herald-credentials"}
    for variable in (
        "HERALD_JWT_PUBLIC_KEY",
        "HERALD_KAFKA_SASL_PASSWORD_FILE",
        "HERALD_KAFKA_SSL_CA_FILE",
        "HERALD_KAFKA_SSL_CERT_FILE",
        "HERALD_KAFKA_SSL_KEY_FILE",
    ):
        assert env[variable].startswith("/etc/herald/secrets/")


def routes(path: dict[str, str], target: str) -> bool:
    """Whether an Ingress path sends `target` to Herald (Kubernetes Exact and Prefix rules)."""
    prefix = path["path"].rstrip("/")
    if path["pathType"] == "Exact":
        return path["path"] == target
    return prefix == "" or target == prefix or target.startswith(prefix + "/")


def test_ingress_keeps_metrics_and_health_inside(rendered: dict) -> None:
    ingress = one(rendered["all-on"][1], "Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["pathType"] for p in paths} <= {"Exact", "Prefix"}
    for internal in INTERNAL_PATHS:
        assert not [p for p in paths if routes(p, internal)], internal
    for public in ("/v1/topics/news/stream", "/client/herald.js", "/", "/openapi.yaml"):
        assert [p for p in paths if routes(p, public)], public
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert int(annotations[prefix + "proxy-read-timeout"]) > 75
    assert int(annotations[prefix + "proxy-send-timeout"]) > 75
    assert annotations[prefix + "proxy-buffering"] == "off"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"ingress": {"enabled": True, "paths": [{"path": "/", "pathType": "Prefix"}]}},
            "stays inside the cluster",
        ),
        ({"config": {"HERALD_JWT_SECRET": "x"}}, "never in the ConfigMap"),
        ({"config": {"HERALD_BIND": "0.0.0.0:1"}}, "the chart sets it"),
        ({"secrets": {"existingSecret": "mine"}}, "existingSecretEntries"),
        ({"secrets": {"existingSecretEntries": ["jwtSecret"]}}, "without secrets.existingSecret"),
        (
            {"secrets": {"existingSecret": "m", "existingSecretEntries": ["jwtSecret"]} | SECRET_1},
            "use one or the other",
        ),
        ({"autoscalling": {"enabled": True}}, "autoscalling"),
    ],
)
def test_refuses_what_an_operator_should_not_ship(
    helm: Helm, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    result = template(helm, values_file(tmp_path, values))
    assert result.returncode != 0
    assert message in result.stderr


def test_autoscaler_and_disruption_budget_target_the_pods(rendered: dict) -> None:
    docs = rendered["all-on"][1]
    deployment = one(docs, "Deployment")
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert pdb.items() <= labels.items()
    service = one(docs, "Service")["spec"]["selector"]
    assert service.items() <= labels.items()
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(exposed_port())
    default = one(rendered["defaults"][1], "Deployment")["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in default["annotations"], "scrape annotations: opt-in"


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == service.__version__
