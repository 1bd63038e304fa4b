"""docs/grafana-dashboard.json: a valid dashboard whose every expression names real metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lilya.metrics import METRIC_NAMES, Metrics
from tests.support.docs import DOCS
from tests.support.metrics import parse

DASHBOARD: dict[str, Any] = json.loads((DOCS / "grafana-dashboard.json").read_text())
TARGETS = [target for panel in DASHBOARD["panels"] for target in panel["targets"]]
EXPRESSIONS = [target["expr"] for target in TARGETS]
_NAME = re.compile(r"\blilya_[a-z_]+\b")
_BY = re.compile(r"\bby \(([^)]*)\)")


def exported() -> dict[str, set[str]]:
    """Every sample name a scrape shows once each metric has a sample, with its labels."""
    metrics = Metrics()
    for collector in (
        metrics.active, metrics.handshakes, metrics.messages, metrics.message_bytes,
        metrics.closes, metrics.limit_closes, metrics.dropped_messages, metrics.publishes,
        metrics.dropped_events, metrics.gaps, metrics.recoveries, metrics.reconnects,
    ):  # fmt: skip
        collector.labels(*("x" for _ in collector._labelnames)).inc()
    metrics.duration.labels("/ws").observe(1)
    body, _ = metrics.render()
    names: dict[str, set[str]] = {}
    for name, labels in parse(body.decode()):
        names.setdefault(name, set()).update(label for label, _ in labels)
    return names


def test_the_dashboard_is_grafana_dashboard_json() -> None:
    assert DASHBOARD["title"] and DASHBOARD["uid"]
    assert isinstance(DASHBOARD["schemaVersion"], int)
    [variable] = DASHBOARD["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["type"] == "timeseries" and panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs))


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_every_expression_names_metrics_and_labels_that_exist(expr: str) -> None:
    names = exported()
    used = _NAME.findall(expr)
    assert used, f"no lilya metric in {expr!r}"
    assert expr.count("(") == expr.count(")"), expr
    for name in used:
        assert name in names, f"{expr!r} names {name}, which lilya.metrics does not export"
        for group in _BY.findall(expr):
            for label in (part.strip() for part in group.split(",")):
                assert label in names[name], f"{expr!r}: {name} has no label {label!r}"


def test_every_exported_metric_has_a_panel() -> None:
    shown = {name for expr in EXPRESSIONS for name in _NAME.findall(expr)}
    for name in METRIC_NAMES:
        on_dashboard = name in shown or f"{name}_bucket" in shown
        assert on_dashboard, f"{name} is exported but on no panel"
