"""deploy/examples are what users `kubectl apply`: the custom resources match the CRDs' own
openAPIV3Schema and the workloads beside them are valid Kubernetes objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "deploy" / "examples").glob("*.yaml"))
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def example_objects() -> list[Any]:
    return [
        pytest.param(doc, id=f"{path.name}:{doc['kind']}/{doc['metadata']['name']}")
        for path in EXAMPLES
        for doc in load_all(path)
    ]


def test_examples_hold_a_function_and_a_pipeline() -> None:
    kinds = {doc["kind"] for path in EXAMPLES for doc in load_all(path)}
    assert {"Function", "Pipeline"} <= kinds


@pytest.mark.parametrize("doc", example_objects())
def test_example_object_is_valid(
    tailrace_crd_schemas: dict[tuple[str, str], dict[str, Any]], doc: dict[str, Any]
) -> None:
    schema = tailrace_crd_schemas.get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        jsonschema.Draft7Validator(schema).validate(doc)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("doc", example_objects())
def test_example_workload_is_selected_by_its_custom_resource(doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("tailrace.dev/"):
        siblings = [
            other
            for path in EXAMPLES
            for other in load_all(path)
            if other["kind"] in {"Deployment", "StatefulSet"}
        ]
        wanted = doc["spec"]["selector"]["matchLabels"].items()
        assert any(
            wanted <= other["spec"]["template"]["metadata"]["labels"].items() for other in siblings
        )


def test_closed_crd_schema_rejects_a_misspelt_field(
    tailrace_crd_schemas: dict[tuple[str, str], dict[str, Any]],
) -> None:
    schemas = tailrace_crd_schemas
    function = next(doc for path in EXAMPLES for doc in load_all(path) if doc["kind"] == "Function")
    broken = copy.deepcopy(function)
    broken["spec"]["logs"]["maxLinesBytes"] = 100
    with pytest.raises(jsonschema.ValidationError, match="maxLinesBytes"):
        jsonschema.Draft7Validator(schemas[("tailrace.dev/v1alpha1", "Function")]).validate(broken)


def test_crd_schema_rejects_a_line_limit_outside_the_documented_range(
    tailrace_crd_schemas: dict[tuple[str, str], dict[str, Any]],
) -> None:
    schemas = tailrace_crd_schemas
    function = next(doc for path in EXAMPLES for doc in load_all(path) if doc["kind"] == "Function")
    broken = copy.deepcopy(function)
    broken["spec"]["logs"]["maxLineBytes"] = 100
    with pytest.raises(jsonschema.ValidationError, match="less than the minimum of 1024"):
        jsonschema.Draft7Validator(schemas[("tailrace.dev/v1alpha1", "Function")]).validate(broken)
