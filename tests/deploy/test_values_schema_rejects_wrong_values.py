"""values.schema.json turns a wrong value into a clear error before anything is rendered."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "tailrace"

WRONG_VALUES = [
    pytest.param(
        {"image": {"pullPolicy": "Sometimes"}},
        ["/image/pullPolicy", "'Always', 'IfNotPresent', 'Never'"],
        id="unknown-pull-policy",
    ),
    pytest.param(
        {"server": {"replicaCount": -1}},
        ["/server/replicaCount", "minimum: got -1, want 1"],
        id="negative-replicas",
    ),
    pytest.param(
        {"replicas": 3},
        ["additional properties 'replicas' not allowed"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        {"operator": {"replicaCount": 2}},
        ["/operator/replicaCount", "maximum: got 2, want 1"],
        id="two-operators",
    ),
    pytest.param(
        {"webhook": {"failurePolicy": "Warn"}},
        ["/webhook/failurePolicy", "'Ignore', 'Fail'"],
        id="unknown-failure-policy",
    ),
    pytest.param(
        {"webhook": {"timeoutSeconds": 60}},
        ["/webhook/timeoutSeconds", "maximum: got 60, want 30"],
        id="webhook-timeout-above-api-server-limit",
    ),
    pytest.param(
        {"server": {"service": {"httpPort": 70000}}},
        ["/server/service/httpPort", "maximum: got 70,000, want 65,535"],
        id="port-out-of-range",
    ),
    pytest.param(
        {"server": {"persistance": {"enabled": False}}},
        ["/server", "additional properties 'persistance' not allowed"],
        id="misspelt-nested-key",
    ),
    pytest.param(
        {"store": {"postgresql": {"enabled": "yes"}}},
        ["/store/postgresql/enabled", "got string, want boolean"],
        id="string-for-boolean",
    ),
    pytest.param(
        {"containerSecurityContext": {"readOnlyRootFileSystem": True}},
        ["/containerSecurityContext", "additional properties 'readOnlyRootFileSystem' not allowed"],
        id="misspelt-security-setting",
    ),
    pytest.param(
        {"image": {"digest": "latest"}},
        ["/image/digest", "does not match pattern"],
        id="digest-not-a-digest",
    ),
    pytest.param(
        {"agent": {"daemonset": {"podsDir": "var/log/pods"}}},
        ["/agent/daemonset/podsDir", "does not match pattern"],
        id="relative-host-path",
    ),
]


@pytest.mark.parametrize(("values", "messages"), WRONG_VALUES)
def test_helm_rejects_wrong_value_with_a_message_naming_it(
    helm_template: Callable[[dict[str, Any]], Any], values: dict[str, Any], messages: list[str]
) -> None:
    with pytest.raises(Exception, match="values don't meet the specifications") as raised:
        helm_template(values)
    for message in messages:
        assert message in str(raised.value)


def test_schema_accepts_the_default_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART / "values.yaml").read_text()))


def test_schema_is_draft_07_and_closed_at_the_top_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False


def test_every_default_value_is_described_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        assert node.get("description"), f"{path} has no description"
        if isinstance(value, dict) and "properties" in node and node["properties"]:
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} is not in the schema"
                walk(child, node["properties"][key], f"{path}.{key}")

    for key, value in values.items():
        walk(value, schema["properties"][key], key)


def test_postgresql_without_a_url_or_secret_fails_with_advice(
    helm_template: Callable[[dict[str, Any]], Any],
) -> None:
    with pytest.raises(Exception, match=r"store\.postgresql\.existingSecret"):
        helm_template({"store": {"postgresql": {"enabled": True}}})
