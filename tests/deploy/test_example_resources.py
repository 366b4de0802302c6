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
CRDS = REPO / "deploy" / "helm" / "tailrace" / "crds"
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def as_json_schema(node: Any) -> Any:
    """A CRD's OpenAPI v3 schema as JSON Schema, closed like the API server's field validation.

    `nullable` becomes a null type, and an object that lists its properties rejects any other:
    the API server would prune (or, with strict field validation, refuse) an unknown field, so a
    misspelt key in an example must fail here.
    """
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: as_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False) and "type" in converted:
        converted["type"] = [converted["type"], "null"]
    is_closed_object = (
        converted.get("type") == "object"
        and "properties" in converted
        and "additionalProperties" not in converted
        and not converted.get("x-kubernetes-preserve-unknown-fields")
    )
    if is_closed_object:
        converted["additionalProperties"] = False
    return converted


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in load_all(path):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = as_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                # metadata is validated by the API server itself, not by the CRD.
                schema["properties"]["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


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
def test_example_object_is_valid(doc: dict[str, Any]) -> None:
    schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
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


def test_closed_crd_schema_rejects_a_misspelt_field() -> None:
    schemas = crd_schemas()
    function = next(doc for path in EXAMPLES for doc in load_all(path) if doc["kind"] == "Function")
    broken = copy.deepcopy(function)
    broken["spec"]["logs"]["maxLinesBytes"] = 100
    with pytest.raises(jsonschema.ValidationError, match="maxLinesBytes"):
        jsonschema.Draft7Validator(schemas[("tailrace.dev/v1alpha1", "Function")]).validate(broken)


def test_crd_schema_rejects_a_line_limit_outside_the_documented_range() -> None:
    schemas = crd_schemas()
    function = next(doc for path in EXAMPLES for doc in load_all(path) if doc["kind"] == "Function")
    broken = copy.deepcopy(function)
    broken["spec"]["logs"]["maxLineBytes"] = 100
    with pytest.raises(jsonschema.ValidationError, match="less than the minimum of 1024"):
        jsonschema.Draft7Validator(schemas[("tailrace.dev/v1alpha1", "Function")]).validate(broken)
