"""deploy/grafana/herald-dashboard.json and deploy/prometheus/herald-alerts.yaml, read as
Grafana and Prometheus would: well formed, every PromQL expression parsed by promql-parser
(the Python binding of the Rust PromQL parser), and every metric they name one that a
running Herald exports on /metrics.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from ..clients import publish, sse, ws_recv_op, ws_send
from ..processes import HeraldProcess, serving
from ..scrape import scrape
from .image_steps import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "herald-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "herald-alerts.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"

# Series Prometheus makes itself for every target (and for alerts), not Herald.
PROMETHEUS_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
}
# The series names Prometheus stores for a family of each type (what a query may name).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"critical", "warning", "info"}
# Prometheus' duration syntax, as `for:` takes it.
DURATION = re.compile(r"(\d+(ms|[smhdwy]))+")

# What Grafana replaces before a query reaches Prometheus: its interval variables (always a
# duration) and the dashboard's own template variables (here only ever in label values).
GRAFANA_INTERVAL = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LABEL_VALUES = re.compile(r"label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)")


# --- reading the files ------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    """Every rule of every group."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, PromQL, legend) of every query: the panels' targets, and the selectors of the
    variables' label_values (no legend)."""
    queries = [
        (
            f"panel {panel['title']!r} target {target.get('refId')}",
            target["expr"],
            target.get("legendFormat", ""),
        )
        for panel in panels(board)
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    for name, variable in variables(board).items():
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        matched = LABEL_VALUES.fullmatch(text.strip())
        assert matched, f"variable {name}: {text!r} is not label_values(...)"
        if matched["selector"]:
            queries.append((f"variable {name}", matched["selector"], ""))
    return queries


def as_prometheus_gets_it(expr: str, defined: set[str]) -> str:
    """A Grafana query with its variables replaced as Grafana would before sending it."""
    expr = GRAFANA_INTERVAL.sub("5m", expr)
    used = {a or b for a, b in GRAFANA_VARIABLE.findall(expr)}
    assert used <= defined, f"{expr!r} uses undefined variables {sorted(used - defined)}"
    return GRAFANA_VARIABLE.sub("x", expr)


def parse(where: str, expr: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(expr)
    except ValueError as error:
        raise AssertionError(f"{where}: {expr!r} is not PromQL: {error}") from error


def metric_names(where: str, expr: promql_parser.Expr) -> set[str]:
    """The metric names an expression selects (by name, or by an exact __name__ matcher)."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            exact = [
                m.value
                for m in node.matchers.matchers
                if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
            ]
            assert node.name or exact, f"{where}: {node} selects no metric by name"
            names.update(exact or [node.name])

    promql_parser.walk(expr, visit)
    return names


def kept_labels(expr: promql_parser.Expr) -> set[str] | None:
    """The labels an expression's result keeps, as far as it can tell (None: all of the
    selected series', which depend on the series)."""
    p = promql_parser
    if isinstance(expr, p.ParenExpr):
        return kept_labels(expr.expr)
    if isinstance(expr, p.AggregateExpr):
        if str(expr.op) in ("topk", "bottomk", "limitk", "limit_ratio"):
            return kept_labels(expr.expr)
        if expr.modifier is None:
            return set()
        if expr.modifier.type == p.AggModifierType.By:
            return set(expr.modifier.labels)
        inner = kept_labels(expr.expr)
        return None if inner is None else inner - set(expr.modifier.labels)
    if isinstance(expr, p.BinaryExpr):
        if isinstance(expr.lhs, p.NumberLiteral):
            return kept_labels(expr.rhs)
        return kept_labels(expr.lhs)
    if isinstance(expr, p.Call):
        vectors = [arg for arg in expr.args if not isinstance(arg, p.NumberLiteral)]
        if expr.func.name == "absent":
            (selector,) = vectors
            return {m.name for m in selector.matchers.matchers if m.op == p.MatchOp.Equal}
        inner = kept_labels(vectors[0]) if vectors else set()
        if expr.func.name == "histogram_quantile" and inner is not None:
            return inner - {"le"}
        return inner
    return None


def exported_series(exposition: str) -> dict[str, str]:
    """Every series name a scrape of this text stores, and the family it belongs to."""
    series = {}
    for family in text_string_to_metric_families(exposition):
        for suffix in SERIES_SUFFIXES[family.type]:
            series[family.name + suffix] = family.name
        for sample in family.samples:
            series[sample.name] = family.name
    return series


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def rule_expressions() -> list[tuple[str, str]]:
    return [(f"rule {rule['alert']}", rule["expr"]) for rule in rules()]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL as Prometheus gets it) of the dashboard's queries."""
    board = dashboard()
    defined = set(variables(board))
    return [
        (where, as_prometheus_gets_it(expr, defined)) for where, expr, _ in dashboard_queries(board)
    ]


def names_used(expressions: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each metric name the expressions select, and where."""
    used: dict[str, list[str]] = {}
    for where, expr in expressions:
        for name in metric_names(where, parse(where, expr)):
            used.setdefault(name, []).append(where)
    return used


# --- the rules --------------------------------------------------------------------------


def test_rules_are_well_formed_prometheus_alerting_rules() -> None:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    groups = document["groups"]
    assert groups, "no group"
    group_names = Counter(group["name"] for group in groups)
    assert all(n == 1 for n in group_names.values()), f"groups named twice: {group_names}"
    alerts = Counter(rule.get("alert") for rule in rules())
    assert all(n == 1 for n in alerts.values()), f"alerts named twice: {alerts}"
    for rule in rules():
        name = rule.get("alert")
        assert isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), rule
        assert set(rule) <= RULE_KEYS, f"{name}: unknown keys {set(rule) - RULE_KEYS}"
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), f"{name}: no expr"
        assert DURATION.fullmatch(str(rule.get("for"))), f"{name}: for {rule.get('for')!r}"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert isinstance(annotations.get(key), str) and annotations[key], f"{name}: {key}"
    # The ones on-call asked for.
    assert {
        "HeraldDown",
        "HeraldKafkaUnreachable",
        "HeraldConsumerLagging",
        "HeraldDeliveryLatencyHigh",
        "HeraldPublishFailing",
        "HeraldManyLaggingDisconnects",
        "HeraldKafkaErrors",
        "HeraldLagNotice",
    } <= set(alerts)


def test_every_runbook_is_a_section_of_the_operations_guide() -> None:
    anchors = github_anchors(OPERATIONS.read_text())
    for rule in rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/operations.md", f"{rule['alert']}: {path}"
        assert anchor in anchors, f"{rule['alert']}: docs/operations.md has no #{anchor}"


def test_rule_expressions_parse_and_annotations_name_only_kept_labels() -> None:
    for rule in rules():
        expr = parse(rule["alert"], rule["expr"])
        kept = kept_labels(expr)
        text = " ".join(rule["annotations"].values())
        named = set(re.findall(r"\$labels\.(\w+)", text))
        # An alert's labels are those its expression's result keeps: another one is empty.
        assert kept is None or named <= kept, (
            f"{rule['alert']}: annotations name {sorted(named - kept)}, the expression keeps"
            f" only {sorted(kept)}"
        )


# --- the dashboard ----------------------------------------------------------------------


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["title"] and board["uid"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 39
    declared = variables(board)
    source = declared.get("DS_PROMETHEUS")
    assert source and source["type"] == "datasource" and source["query"] == "prometheus"
    assert {"job", "instance"} & set(declared), "neither a job nor an instance variable"
    every = panels(board)
    ids = Counter(panel["id"] for panel in every)
    assert all(n == 1 for n in ids.values()), f"panel ids used twice: {ids}"
    taken: set[tuple[int, int]] = set()
    for panel in every:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, title
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"panel {title!r} overlaps another"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"panel {title!r} has no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, title
        assert panel["targets"], f"panel {title!r} has no query"
        refs = Counter(target["refId"] for target in panel["targets"])
        assert all(n == 1 for n in refs.values()), f"panel {title!r}: refIds {refs}"
        for target in panel["targets"]:
            assert target.get("expr"), f"panel {title!r} target {target['refId']}: no expr"
            assert target["datasource"] == panel["datasource"], title
    for name, variable in declared.items():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${DS_PROMETHEUS}", name


def test_dashboard_queries_parse_and_legends_name_only_kept_labels() -> None:
    board = dashboard()
    defined = set(variables(board))
    for where, expr, legend in dashboard_queries(board):
        kept = kept_labels(parse(where, as_prometheus_gets_it(expr, defined)))
        named = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        assert kept is None or named <= kept, (
            f"{where}: the legend names {sorted(named - kept)}, the query keeps {sorted(kept)}"
        )


def test_the_checks_would_catch_a_misspelt_or_malformed_query() -> None:
    with pytest.raises(AssertionError, match="is not PromQL"):
        parse("broken", "sum(rate(herald_deliveries_total[5m])")
    with pytest.raises(AssertionError, match="undefined variables"):
        as_prometheus_gets_it('herald_kafka_up{job=~"$jobs"}', {"job"})
    expr = parse("x", 'rate({__name__="herald_deliveries_total"}[5m]) / herald_connections')
    assert metric_names("x", expr) == {"herald_deliveries_total", "herald_connections"}
    assert kept_labels(parse("x", "max by (job) (herald_kafka_up) == 0")) == {"job"}
    assert exported_series(
        "# TYPE herald_deliveries counter\n# TYPE herald_delivery_latency_seconds histogram\n"
    ).keys() == {
        "herald_deliveries_total",
        "herald_delivery_latency_seconds_bucket",
        "herald_delivery_latency_seconds_sum",
        "herald_delivery_latency_seconds_count",
    }


# --- against a running Herald -----------------------------------------------------------


async def long_poll_held(server: HeraldProcess) -> None:
    """Until the instance says a long-poll is held (another process: nothing to await)."""
    async with asyncio.timeout(10):
        while True:
            if (await scrape(server.base_url)).total("herald_long_polls_waiting") >= 1:
                return
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def exposition(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of a Herald that has published, and delivered over WebSocket, SSE and a
    long-poll, scraped while those clients are still connected."""
    log = tmp_path_factory.mktemp("observability") / "herald.log"
    server = HeraldProcess(kafka_bootstrap, log, topics=r"obs-[A-Za-z0-9._-]+")
    topic = f"obs-{uuid.uuid4().hex[:12]}"
    async with (
        serving(server),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
        connect(f"{server.ws_url}/v1/ws") as ws,
        sse(server.base_url, f"/v1/topics/{topic}/stream?key=k") as stream,
    ):
        await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "k"})
        await ws_recv_op(ws, "subscribed")
        [first] = await publish(server.base_url, topic, {"data": "first", "key": "k"})
        assert (await ws_recv_op(ws, "event"))["data"] == "first"
        assert (await stream.next_event()).json()["data"] == "first"
        polled = asyncio.create_task(
            client.get(
                f"/v1/topics/{topic}/events", params={"key": "k", "after": first["id"], "wait": 30}
            )
        )
        try:
            await long_poll_held(server)
            await publish(server.base_url, topic, {"data": "second", "key": "k"})
            assert (await ws_recv_op(ws, "event"))["data"] == "second"
            assert (await stream.next_event()).json()["data"] == "second"
            page = await polled
        finally:
            polled.cancel()
        assert [event["data"] for event in page.json()["events"]] == ["second"]
        return (await scrape(server.base_url)).text


@pytest.fixture(scope="module")
def series(exposition: str) -> dict[str, str]:
    """Every series name the scrape holds, and its family."""
    return exported_series(exposition)


def test_every_metric_the_rules_and_the_dashboard_use_is_exported(
    series: dict[str, str],
) -> None:
    used = names_used(rule_expressions() + dashboard_expressions())
    missing = {
        name: places
        for name, places in sorted(used.items())
        if name not in series and name not in PROMETHEUS_SERIES
    }
    assert not missing, "not in a scrape of a running Herald:\n" + "\n".join(
        f"  {name} (used by {', '.join(places)})" for name, places in missing.items()
    )


def test_the_dashboard_shows_every_metric_herald_exports(series: dict[str, str]) -> None:
    shown = {series.get(name) for name in names_used(dashboard_expressions())}
    families = {family for family in series.values() if family.startswith("herald_")}
    # prometheus_client gives each counter and histogram a gauge X_created (its start time).
    families -= {f"{family}_created" for family in families}
    unshown = sorted(families - shown)
    assert not unshown, f"no panel of {DASHBOARD.name} shows {unshown}"


def test_the_exercise_left_labelled_series_behind(exposition: str) -> None:
    # What the panels group by exists, so they show lines rather than "no data".
    samples = {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    assert ("herald_deliveries_total", (("transport", "ws"),)) in samples
    assert ("herald_deliveries_total", (("transport", "sse"),)) in samples
    assert ("herald_connections", (("transport", "ws"),)) in samples
    assert ("herald_connections", (("transport", "sse"),)) in samples
    assert any(name == "herald_http_requests_total" for name, _ in samples)
