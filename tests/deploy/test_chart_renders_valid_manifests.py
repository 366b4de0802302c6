"""The chart lints and renders for every supported combination of values, and every manifest it
renders is valid Kubernetes (strict OpenAPI schemas of two Kubernetes versions) or, for the
Prometheus Operator and cert-manager objects, has the structure those operators read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

# The oldest and a recent Kubernetes the chart supports (kubernetes-validate ships 1.25 to 1.37).
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]

# Custom resources that kubernetes-validate has no schema for, checked for the fields their
# operators need (the full CRDs are not vendored here).
_STRING = {"type": "string", "minLength": 1}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": _STRING, "namespace": _STRING},
}
_DURATION = {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": {"type": "object", "minProperties": 1}},
    "required": ["matchLabels"],
}
CUSTOM_RESOURCE_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": _SELECTOR,
                    "namespaceSelector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": _STRING,
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                            },
                        },
                    },
                },
            },
        },
    },
    ("monitoring.coreos.com/v1", "PodMonitor"): {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "podMetricsEndpoints"],
                "properties": {
                    "selector": _SELECTOR,
                    "namespaceSelector": {"type": "object"},
                    "podMetricsEndpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": _STRING,
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                            },
                        },
                    },
                },
            },
        },
    },
    ("cert-manager.io/v1", "Issuer"): {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {"selfSigned": {"type": "object"}, "ca": {"type": "object"}},
                "additionalProperties": False,
            },
        },
    },
    ("cert-manager.io/v1", "Certificate"): {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["secretName", "dnsNames", "issuerRef"],
                "properties": {
                    "secretName": _STRING,
                    "commonName": {"type": "string", "maxLength": 64},
                    "dnsNames": {"type": "array", "minItems": 1, "items": _STRING},
                    "duration": _DURATION,
                    "renewBefore": _DURATION,
                    "usages": {
                        "type": "array",
                        "items": {"enum": ["server auth", "digital signature", "key encipherment"]},
                    },
                    "privateKey": {
                        "type": "object",
                        "properties": {
                            "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                            "size": {"type": "integer"},
                            "rotationPolicy": {"enum": ["Never", "Always"]},
                        },
                    },
                    "issuerRef": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "name": _STRING,
                            "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                            "group": _STRING,
                        },
                    },
                },
            },
        },
    },
}


def test_chart_passes_strict_lint_with_values(
    helm_lint: Callable[[str], str], combination: str
) -> None:
    output = helm_lint(combination)
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_are_valid_kubernetes_objects(
    rendered: Callable[[str], Any], combination: str, version: str
) -> None:
    failures = []
    render = rendered(combination)
    own_crds = render.crd_schemas()
    for doc in render.docs:
        key = (doc["apiVersion"], doc["kind"])
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if key in CUSTOM_RESOURCE_SCHEMAS:
            continue
        if key in own_crds:
            # A custom resource whose CRD the chart itself installs (kopf peering).
            errors = jsonschema.Draft7Validator(own_crds[key]).iter_errors(doc)
            failures += [f"{where}: {error.message}" for error in errors]
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = "/".join(str(part) for part in err.path)
            failures.append(f"{where}: {path}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError:
            failures.append(f"{where}: {key} is not a Kubernetes {version} API nor a known CR")
    assert not failures, "\n".join(failures)


def test_rendered_custom_resources_have_the_structure_their_operators_read(
    rendered: Callable[[str], Any], combination: str
) -> None:
    for doc in rendered(combination).docs:
        schema = CUSTOM_RESOURCE_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if schema is not None:
            jsonschema.validate(doc, schema)


def test_every_rendered_object_lives_in_the_release_namespace_or_is_cluster_scoped(
    rendered: Callable[[str], Any],
) -> None:
    cluster_scoped = {
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
    }
    for doc in rendered("default").docs:
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped:
            assert namespace is None, doc["metadata"]["name"]
        else:
            assert namespace == "tailrace-system", f"{doc['kind']}/{doc['metadata']['name']}"


def test_crds_are_shipped_from_the_crds_folder_unchanged(rendered: Callable[[str], Any]) -> None:
    crds_folder = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "tailrace" / "crds"
    shipped = {
        doc["metadata"]["name"]: doc
        for path in crds_folder.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    rendered_crds = {
        doc["metadata"]["name"]: doc for doc in rendered("default").find("CustomResourceDefinition")
    }
    assert {"functions.tailrace.dev", "pipelines.tailrace.dev"} <= shipped.keys()
    for name, crd in shipped.items():
        assert rendered_crds[name] == crd
    # Besides them, only the kopf peering CRDs the operator needs (templates/operator/peering.yaml).
    assert rendered_crds.keys() - shipped.keys() == {
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }


def test_names_stay_within_kubernetes_limits_for_a_long_release_name(
    helm_template: Callable[[dict[str, Any]], Any],
) -> None:
    docs = helm_template({"fullnameOverride": "x" * 80})
    for doc in docs:
        name = doc["metadata"]["name"]
        # Service names are DNS labels (63 characters).
        assert len(name) <= 63, name
        if doc["kind"] == "StatefulSet":
            # Its pods carry controller-revision-hash: <name>-<10 characters>, a 63-character label.
            assert len(name) + 11 <= 63, name


def test_chart_renders_valid_objects_for_the_oldest_supported_kubernetes(
    helm_template: Callable[..., Any],
) -> None:
    values = {"agent": {"daemonset": {"enabled": True}}, "networkPolicy": {"enabled": True}}
    docs = helm_template(values, "--kube-version", "1.25.0")
    statefulset = next(doc for doc in docs if doc["kind"] == "StatefulSet")
    assert "persistentVolumeClaimRetentionPolicy" not in statefulset["spec"]
    for doc in docs:
        if doc["apiVersion"].startswith("kopf.dev/"):
            continue
        kubernetes_validate.validate(doc, "1.25.0", strict=True)
