"""What the chart must agree on with the operator: the webhook path and the CRD files it ships."""

from __future__ import annotations

from pathlib import Path

import yaml

from tailrace import conventions
from tailrace_operator import webhook

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "tailrace"


def test_chart_calls_the_path_kopf_serves_the_injection_webhook_at() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["webhook"]["path"] == webhook.WEBHOOK_PATH
    assert values["webhook"]["port"] == conventions.DEFAULT_WEBHOOK_PORT
    assert values["webhook"]["failurePolicy"] == "Ignore"


def test_chart_ships_exactly_the_two_workload_crds() -> None:
    names = sorted(path.name for path in (CHART / "crds").glob("*.yaml"))
    assert names == ["functions.tailrace.dev.yaml", "pipelines.tailrace.dev.yaml"]
