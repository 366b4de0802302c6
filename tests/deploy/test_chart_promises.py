"""The promises the chart keeps whatever the values: hardened containers, least-privilege RBAC,
a webhook that cannot block pod creation, the image that matches the chart, no shipped token."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "tailrace"


def test_every_container_runs_as_non_root_with_a_read_only_root_filesystem(
    rendered: Callable[[str], Any], combination: str
) -> None:
    checked = 0
    for name, container, pod in rendered(combination).containers():
        context = container.get("securityContext") or {}
        pod_context = pod.get("securityContext") or {}
        assert context.get("readOnlyRootFilesystem") is True, name
        assert context.get("allowPrivilegeEscalation") is False, name
        assert context.get("privileged", False) is False, name
        assert context.get("capabilities", {}).get("drop") == ["ALL"], name
        assert not context.get("capabilities", {}).get("add"), name
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile")
        assert seccomp == {"type": "RuntimeDefault"}, name
        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        run_as_user = context.get("runAsUser", pod_context.get("runAsUser"))
        assert run_as_non_root is True, name
        assert isinstance(run_as_user, int), name
        assert run_as_user > 0, name
        checked += 1
    assert checked >= 2


def test_node_agent_runs_without_any_capability_and_mounts_pod_logs_read_only(
    rendered: Callable[[str], Any],
) -> None:
    daemonset = rendered("node-mode").one("DaemonSet", "demo-tailrace-agent")
    spec = daemonset["spec"]["template"]["spec"]
    (agent,) = spec["containers"]
    assert agent["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {mount["name"]: mount for mount in agent["volumeMounts"]}
    assert mounts["pods-logs"] == {
        "name": "pods-logs",
        "mountPath": "/var/log/pods",
        "readOnly": True,
    }
    assert not mounts["state"].get("readOnly")
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["pods-logs"]["hostPath"] == {"path": "/var/log/pods", "type": "Directory"}
    # Readable through group 0 (kubelet's files are root:root 0640), never as root.
    assert spec["securityContext"]["runAsUser"] == 65532
    assert spec["securityContext"]["runAsGroup"] == 0
    assert "emptyDir" in volumes["state"]
    assert not spec.get("hostNetwork")
    assert not spec.get("hostPID")


def test_every_pod_has_resources_and_a_writable_tmp_only_from_a_volume(
    rendered: Callable[[str], Any], combination: str
) -> None:
    for name, container, _pod in rendered(combination).containers():
        resources = container.get("resources") or {}
        assert resources.get("requests"), name
        assert resources.get("limits", {}).get("memory"), name
        mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, name


def test_rbac_grants_no_wildcard(rendered: Callable[[str], Any], combination: str) -> None:
    render = rendered(combination)
    for kind in ("ClusterRole", "Role"):
        for role in render.find(kind):
            for rule in role.get("rules", []):
                for field in (
                    "apiGroups",
                    "resources",
                    "verbs",
                    "resourceNames",
                    "nonResourceURLs",
                ):
                    assert "*" not in rule.get(field, []), f"{kind}/{role['metadata']['name']}"
                    assert not any("*" in item for item in rule.get(field, []))


def test_rbac_never_grants_secrets_or_pod_writes(
    rendered: Callable[[str], Any], combination: str
) -> None:
    for kind in ("ClusterRole", "Role"):
        for role in rendered(combination).find(kind):
            for rule in role["rules"]:
                assert "secrets" not in rule["resources"]
                if "pods" in rule["resources"]:
                    assert set(rule["verbs"]) <= {"get", "list", "watch"}
                if rule["apiGroups"] == ["admissionregistration.k8s.io"]:
                    raise AssertionError("the chart owns the webhook configuration")


def test_operator_cluster_role_holds_exactly_what_kopf_needs(
    rendered: Callable[[str], Any],
) -> None:
    role = rendered("default").one("ClusterRole", "demo-tailrace-operator")
    grants = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert ("tailrace.dev", "functions", "watch") in grants
    assert ("tailrace.dev", "pipelines/status", "patch") in grants
    assert ("tailrace.dev", "functions/finalizers", "update") in grants
    assert ("", "pods", "watch") in grants
    assert ("", "events", "create") in grants
    assert ("", "namespaces", "list") in grants
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "list") in grants
    assert ("", "pods", "patch") not in grants


def test_operator_watching_some_namespaces_gets_workload_rights_only_there(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("namespaced-operator")
    cluster_role = render.one("ClusterRole", "demo-tailrace-operator")
    assert {r for rule in cluster_role["rules"] for r in rule["resources"]} == {
        "namespaces",
        "customresourcedefinitions",
    }
    roles = render.find("Role", "demo-tailrace-operator")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    bindings = render.find("RoleBinding", "demo-tailrace-operator")
    assert all(b["subjects"][0]["namespace"] == "tailrace-system" for b in bindings)
    args = render.args("Deployment", "demo-tailrace-operator")
    assert args[args.index("--namespace") + 1] == "team-a"
    assert "team-b" in args


def test_server_may_review_tokens_only_with_kubernetes_auth(
    rendered: Callable[[str], Any],
) -> None:
    assert not rendered("default").find("ClusterRole", "demo-tailrace-server")
    role = rendered("node-mode").one("ClusterRole", "demo-tailrace-server")
    assert role["rules"] == [
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
    ]
    args = rendered("node-mode").args("StatefulSet", "demo-tailrace-server")
    assert "--kubernetes-auth" in args
    assert "system:serviceaccount:tailrace-system:demo-tailrace-agent" in args


def test_node_agent_has_no_kubernetes_api_rights(rendered: Callable[[str], Any]) -> None:
    render = rendered("node-mode")
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in render.find(kind):
            names = {subject["name"] for subject in binding["subjects"]}
            assert "demo-tailrace-agent" not in names


def test_webhook_ignores_failures_and_skips_system_and_opted_out_pods(
    rendered: Callable[[str], Any], combination: str
) -> None:
    config = rendered(combination).one("MutatingWebhookConfiguration")
    (webhook,) = config["webhooks"]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    excluded = webhook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["key"] == "kubernetes.io/metadata.name"
    assert excluded["operator"] == "NotIn"
    assert {"tailrace-system", "kube-system"} <= set(excluded["values"])
    assert webhook["objectSelector"]["matchExpressions"] == [
        {"key": "tailrace.dev/inject", "operator": "NotIn", "values": ["false"]}
    ]
    service = webhook["clientConfig"]["service"]
    assert service == {
        "name": "demo-tailrace-webhook",
        "namespace": "tailrace-system",
        "path": "/tailrace-inject-collector",
        "port": 443,
    }


def test_webhook_reaches_only_the_watched_namespaces(rendered: Callable[[str], Any]) -> None:
    config = rendered("namespaced-operator").one("MutatingWebhookConfiguration")
    expressions = config["webhooks"][0]["namespaceSelector"]["matchExpressions"]
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "In",
        "values": ["team-a", "team-b"],
    } in (expressions)


def test_image_tag_follows_the_chart_app_version(
    rendered: Callable[[str], Any], chart_metadata: dict[str, Any], combination: str
) -> None:
    expected = f"ghcr.io/tailrace/tailrace:{chart_metadata['appVersion']}"
    images = {container["image"] for _name, container, _pod in rendered(combination).containers()}
    assert images == {expected}
    args = rendered(combination).args("Deployment", "demo-tailrace-operator")
    assert args[args.index("--collector-image") + 1] == expected


def test_image_digest_wins_over_the_tag(helm_template: Callable[[dict[str, Any]], Any]) -> None:
    digest = "sha256:" + "ab" * 32
    docs = helm_template({"image": {"tag": "9.9.9", "digest": digest}})
    operator = next(doc for doc in docs if doc["kind"] == "Deployment")
    image = operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/tailrace/tailrace@{digest}"


def test_chart_ships_no_token_and_generates_distinct_random_ones(
    helm_template: Callable[[dict[str, Any]], Any],
) -> None:
    def tokens() -> dict[str, str]:
        docs = helm_template({})
        secret = next(doc for doc in docs if doc["metadata"]["name"].endswith("-tokens"))
        return dict(secret["stringData"])

    first, second = tokens(), tokens()
    assert len(first["read-token"]) >= 32
    assert first["read-token"] != first["ingest-token"]
    assert first["read-token"] != second["read-token"]
    assert f"{first['read-token']} *" in first["tokens"]
    assert f"{first['ingest-token']} *" in first["ingest-tokens"]
    assert first["ingest-token"] not in first["tokens"]


def test_existing_token_secret_replaces_the_generated_one(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("namespaced-operator")
    assert not render.find("Secret", "demo-tailrace-tokens")
    for name, spec in render.pod_specs():
        secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        if name != "Deployment/demo-tailrace-operator":
            assert secrets == {"my-tailrace-tokens"}, name


def test_generated_webhook_certificate_matches_the_ca_bundle_and_service(
    rendered: Callable[[str], Any],
) -> None:
    from cryptography import x509

    render = rendered("default")
    secret = render.one("Secret", "demo-tailrace-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    bundle = render.one("MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
    assert bundle == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(bundle))
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "demo-tailrace-webhook.tailrace-system.svc" in names.value.get_values_for_type(
        x509.DNSName
    )
    operator = render.one("Deployment", "demo-tailrace-operator")
    annotations = operator["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/webhook-cert"]


def test_cert_manager_issues_the_webhook_certificate_and_injects_its_ca(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("cert-manager")
    assert not render.find("Secret", "demo-tailrace-webhook-tls")
    certificate = render.one("Certificate", "demo-tailrace-webhook")
    assert certificate["spec"]["secretName"] == "demo-tailrace-webhook-tls"
    assert certificate["spec"]["issuerRef"]["name"] == render.one("Issuer")["metadata"]["name"]
    config = render.one("MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "tailrace-system/demo-tailrace-webhook"
    )
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]

    external = rendered("cert-manager-cluster-issuer")
    assert not external.find("Issuer")
    assert external.one("Certificate")["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


def test_webhook_path_is_the_operators_mutating_handler_id(chart_metadata: dict[str, Any]) -> None:
    """kopf serves a mutating handler at POST /<handler id>; a wrong path would silently inject
    nothing (failurePolicy Ignore), so the chart's default is checked against the operator."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    webhook_source = (REPO / "operator" / "tailrace_operator" / "webhook.py").read_text()
    handler_id = re.search(r'^HANDLER_ID = "([^"]+)"$', webhook_source, re.MULTILINE)
    assert handler_id is not None, "tailrace_operator.webhook.HANDLER_ID not found"
    assert values["webhook"]["path"] == f"/{handler_id.group(1)}"


def test_operator_gets_the_peering_object_kopf_waits_for(rendered: Callable[[str], Any]) -> None:
    settings_source = (REPO / "operator" / "tailrace_operator" / "settings.py").read_text()
    peering_name = re.search(r'peering_name: str = "([^"]+)"', settings_source)
    assert peering_name is not None
    cluster_wide = rendered("default").one("ClusterKopfPeering")
    assert cluster_wide["metadata"]["name"] == peering_name.group(1)
    assert "post-install" in cluster_wide["metadata"]["annotations"]["helm.sh/hook"]
    namespaced = rendered("namespaced-operator")
    assert not namespaced.find("ClusterKopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in namespaced.find("KopfPeering")) == [
        "team-a",
        "team-b",
    ]
    role = rendered("default").one("ClusterRole", "demo-tailrace-operator")
    assert {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "resourceNames": ["tailrace"],
        "verbs": ["get", "patch"],
    } in role["rules"]
