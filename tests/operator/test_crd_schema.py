"""The CRD manifests in deploy/helm/tailrace/crds/: valid CRDs whose schema accepts good workloads,
rejects bad ones with a message naming the field, and defaults what DESIGN.md promises."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tailrace import conventions
from tailrace_operator import resources

CRDS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "tailrace" / "crds"
KINDS = {"Function": ("functions", "fn"), "Pipeline": ("pipelines", "pl")}


def load_crd(kind: str) -> dict[str, Any]:
    plural, _ = KINDS[kind]
    crd: dict[str, Any] = yaml.safe_load((CRDS_DIR / f"{plural}.tailrace.dev.yaml").read_text())
    return crd


def openapi_schema(kind: str) -> dict[str, Any]:
    [version] = load_crd(kind)["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def as_json_schema(node: Any) -> Any:
    """OpenAPI v3 (as Kubernetes uses it) to JSON Schema: `nullable` becomes a null type."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: as_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False) and "type" in converted:
        converted["type"] = [converted["type"], "null"]
    return converted


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: fill absent fields that have a default."""
    if not isinstance(value, dict):
        return value
    result = dict(value)
    for name, sub in (schema.get("properties") or {}).items():
        if name not in result and "default" in sub:
            result[name] = copy.deepcopy(sub["default"])
        if name in result:
            result[name] = apply_defaults(sub, result[name])
    return result


def validator(kind: str) -> jsonschema.protocols.Validator:
    schema = as_json_schema(openapi_schema(kind))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


def workload(kind: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{conventions.API_GROUP}/{conventions.API_VERSION}",
        "kind": kind,
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "hello"}}, **spec},
    }


FULL_SPEC: dict[str, Any] = {
    "logs": {
        "enabled": True,
        "minLevel": "DEBUG",
        "maxLineBytes": 65536,
        "onOverflow": "split",
        "retention": {"maxAge": "36h", "maxLines": 5000, "maxBytes": "512Mi"},
        "executionId": {"jsonField": "requestId", "podLabel": "example.com/run"},
        "ringBuffer": {"lines": 100, "bytes": 1048576},
    },
    "collector": {
        "mode": "node",
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": 1_000_000_000},
        },
    },
}

VALID = [
    pytest.param({}, id="selector-only"),
    pytest.param(FULL_SPEC, id="every-field"),
    pytest.param(
        {"logs": {"maxLineBytes": conventions.MIN_MAX_LINE_BYTES}}, id="smallest-line-limit"
    ),
    pytest.param(
        {"logs": {"maxLineBytes": conventions.MAX_MAX_LINE_BYTES}}, id="largest-line-limit"
    ),
    pytest.param({"logs": {"retention": {"maxAge": "2w", "maxBytes": 1000}}}, id="int-quantity"),
]

INVALID = [
    pytest.param({"logs": {"maxLineBytes": 1023}}, "maxLineBytes", id="line-limit-too-small"),
    pytest.param({"logs": {"maxLineBytes": 1048577}}, "maxLineBytes", id="line-limit-too-big"),
    pytest.param({"logs": {"onOverflow": "wrap"}}, "onOverflow", id="unknown-overflow"),
    pytest.param({"logs": {"minLevel": "info"}}, "minLevel", id="lowercase-level"),
    pytest.param({"logs": {"retention": {"maxAge": "14 days"}}}, "maxAge", id="bad-duration"),
    pytest.param({"logs": {"retention": {"maxBytes": "1 GB"}}}, "maxBytes", id="bad-quantity"),
    pytest.param({"logs": {"retention": {"maxBytes": "-1Gi"}}}, "maxBytes", id="negative-qty"),
    pytest.param({"logs": {"ringBuffer": {"lines": -1}}}, "lines", id="negative-ring-lines"),
    pytest.param({"collector": {"mode": "daemonset"}}, "mode", id="unknown-mode"),
    pytest.param(
        {"collector": {"resources": {"limits": {"memory": "-128Mi"}}}},
        "memory",
        id="negative-limit",
    ),
    pytest.param(
        {"selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}},
        "operator",
        id="unknown-selector-operator",
    ),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("version", ["1.29.0", "1.31.0"])
def test_crd_manifest_is_a_valid_custom_resource_definition(kind: str, version: str) -> None:
    kubernetes_validate.validate(load_crd(kind), version, strict=True)


@pytest.mark.parametrize("kind", KINDS)
def test_crd_names_scope_and_status_subresource(kind: str) -> None:
    crd = load_crd(kind)
    plural, short = KINDS[kind]
    assert crd["metadata"]["name"] == f"{plural}.{conventions.API_GROUP}"
    assert crd["spec"]["group"] == conventions.API_GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == kind
    assert crd["spec"]["names"]["shortNames"] == [short]
    [version] = crd["spec"]["versions"]
    assert version["name"] == conventions.API_VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Pods"] == ".status.pods"


def test_function_and_pipeline_share_one_schema() -> None:
    assert openapi_schema("Function")["properties"] == openapi_schema("Pipeline")["properties"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", VALID)
def test_valid_workload_passes_schema_and_operator_checks(kind: str, spec: dict[str, Any]) -> None:
    obj = workload(kind, **spec)
    validator(kind).validate(obj)
    defaulted = apply_defaults(openapi_schema(kind), obj)
    validator(kind).validate(defaulted)
    assert resources.validate_spec(defaulted["spec"]) == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("spec", "field"), INVALID)
def test_invalid_workload_is_rejected_by_schema_and_operator(
    kind: str, spec: dict[str, Any], field: str
) -> None:
    obj = workload(kind, **spec)
    errors = list(validator(kind).iter_errors(obj))
    assert errors, f"the schema accepted {spec}"
    assert any(field in "/".join(map(str, error.absolute_path)) for error in errors)
    # The operator's own check (for objects that bypassed the schema) agrees and names the field.
    problems = resources.validate_spec(obj["spec"])
    assert any(field in problem for problem in problems), problems


def test_workload_without_selector_is_rejected() -> None:
    obj = workload("Function")
    del obj["spec"]["selector"]
    assert list(validator("Function").iter_errors(obj))
    assert resources.validate_spec(obj["spec"]) == [
        "spec.selector is required and must be a label selector"
    ]


def test_defaults_are_the_documented_ones() -> None:
    spec = apply_defaults(openapi_schema("Function"), workload("Function"))["spec"]
    assert spec["logs"] == {
        "enabled": True,
        "minLevel": "INFO",
        "maxLineBytes": conventions.DEFAULT_MAX_LINE_BYTES,
        "onOverflow": "truncate",
        "retention": {"maxAge": "14d", "maxLines": 1_000_000, "maxBytes": "1Gi"},
        "executionId": {"jsonField": "executionId", "podLabel": conventions.EXECUTION_ID_LABEL},
        "ringBuffer": {"lines": 5000, "bytes": "4Mi"},
    }
    assert spec["collector"] == {"mode": "sidecar"}


def test_status_written_by_the_operator_fits_the_schema() -> None:
    obj = workload("Function")
    obj["status"] = {
        "phase": "Active",
        "observedGeneration": 3,
        "pods": 2,
        "lastLogAt": None,
        "droppedLines": 0,
        "truncatedLines": 7,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Registered",
                "message": "",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 3,
            }
        ],
    }
    validator("Function").validate(obj)
    obj["status"]["phase"] = "Sleeping"
    assert list(validator("Function").iter_errors(obj))
