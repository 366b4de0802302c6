"""The mutating webhook over HTTPS with real admission.k8s.io/v1 AdmissionReview requests."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import kubernetes
import kubernetes_validate
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tailrace import conventions
from tailrace_operator import webhook
from tests.operator.conftest import KubernetesAPI
from tests.operator.harness import (
    GROUP_VERSION,
    FakeControlServer,
    RunningOperator,
    eventually,
    eventually_async,
    free_port,
    function_body,
    operator_settings,
    running_operator,
)

FUNCTIONS = f"/apis/{GROUP_VERSION}/namespaces/{{ns}}/functions"


@dataclass
class Webhook:
    url: str
    client: httpx.AsyncClient
    operator: RunningOperator

    async def review(self, pod: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        request_uid = str(uuid.uuid4())
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": request_uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {
                    "username": "system:serviceaccount:kube-system:replicaset-controller",
                    "groups": ["system:serviceaccounts", "system:authenticated"],
                },
                "object": pod,
                "oldObject": None,
                "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }
        response = await self.client.post(self.url, json=review)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == request_uid
        assert answer["response"]["allowed"] is True
        return dict(answer["response"])


def decoded_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    if "patch" not in response:
        return []
    assert response["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return ops


def make_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tailrace-operator.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.asynccontextmanager
async def start_webhook(
    k8s: KubernetesAPI, control_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[Webhook]:
    cert, key = make_certificate(tmp_path)
    port = free_port()
    config = operator_settings(
        control_url,
        webhook_addr=f"127.0.0.1:{port}",
        webhook_cert=cert,
        webhook_key=key,
        collector_image="registry.example/tailrace:0.1.0",
        agent_server="tailrace.tailrace.svc:7070",
        **overrides,
    )
    context = ssl.create_default_context(cafile=str(cert))
    async with (
        running_operator(k8s, config) as operator,
        httpx.AsyncClient(verify=context, timeout=10) as client,
    ):
        yield Webhook(f"https://127.0.0.1:{port}{webhook.WEBHOOK_PATH}", client, operator)


def native_webhook(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> contextlib.AbstractAsyncContextManager[Webhook]:
    # Started inside each test, not in a fixture: at shutdown kopf cancels every task created
    # after it started, which would include pytest-asyncio's fixture-teardown task.
    return start_webhook(k8s, control_server.url, tmp_path, kubernetes_version="1.31.0")


def deployment_pod(app: str, namespace: str = "default", **extra_spec: Any) -> dict[str, Any]:
    """A pod as a ReplicaSet controller submits it (no name yet, only generateName)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{app}-7d9c6b5f4-",
            "namespace": namespace,
            "labels": {"app": app, "pod-template-hash": "7d9c6b5f4"},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "example/app:1",
                    "ports": [{"containerPort": 8080}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
            **extra_spec,
        },
    }


def collectors(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [
        c
        for c in [*spec.get("containers", []), *spec.get("initContainers", [])]
        if c["name"] == conventions.COLLECTOR_CONTAINER
    ]


async def apply_function(
    k8s: KubernetesAPI, name: str, namespace: str = "default", **spec: Any
) -> None:
    await k8s.post(FUNCTIONS.format(ns=namespace), json=function_body(name, namespace, **spec))


async def patched_by(hook: Webhook, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The patch for this pod once the webhook knows the Function (its index fills shortly)."""

    async def ask() -> list[dict[str, Any]]:
        return decoded_patch(await hook.review(pod))

    found: list[dict[str, Any]] = await eventually_async(ask)
    return found


@pytest.mark.parametrize("version", ["1.29.0", "1.31.0"])
async def test_native_sidecar_patch_gives_a_valid_pod_with_one_collector(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path, version: str
) -> None:
    async with native_webhook(k8s, control_server, tmp_path) as hook:
        await apply_function(k8s, "hello", logs={"maxLineBytes": 32768, "onOverflow": "split"})
        pod = deployment_pod(
            "hello",
            initContainers=[{"name": "migrate", "image": "example/migrate:1"}],
            volumes=[{"name": "data", "emptyDir": {}}],
        )

        ops = await patched_by(hook, pod)
        patched = jsonpatch.apply_patch(pod, ops)

        kubernetes_validate.validate(patched, version, strict=True)
        [collector] = collectors(patched)
        # First of the init containers: it starts before them and collects their logs too.
        assert patched["spec"]["initContainers"][0]["name"] == conventions.COLLECTOR_CONTAINER
        assert collector["restartPolicy"] == "Always"
        assert collector["image"] == "registry.example/tailrace:0.1.0"
        command = collector["command"]
        assert command[:2] == ["tailrace", "agent"]
        assert command[command.index("--server") + 1] == "tailrace.tailrace.svc:7070"
        assert command[command.index("--pods-dir") + 1] == "/var/log/pods"
        assert command[command.index("--state-dir") + 1] == "/var/lib/tailrace"
        assert command[command.index("--max-line-bytes") + 1] == "32768"
        assert command[command.index("--on-overflow") + 1] == "split"
        env = {item["name"]: item for item in collector["env"]}
        assert env[conventions.ENV_POD_UID]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
        assert (
            env[conventions.ENV_POD_NAME]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        )
        assert (
            env[conventions.ENV_NODE_NAME]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
        )
        assert env[conventions.ENV_WORKLOAD]["value"] == "Function/hello"
        security = collector["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert collector["resources"]["requests"]
        assert collector["resources"]["limits"]
        mounts = {m["mountPath"]: m for m in collector["volumeMounts"]}
        assert mounts["/var/log/pods"]["readOnly"] is True
        volumes = {v["name"]: v for v in patched["spec"]["volumes"]}
        assert volumes["data"] == {"name": "data", "emptyDir": {}}
        log_volume = volumes[mounts["/var/log/pods"]["name"]]
        assert log_volume["hostPath"]["path"] == "/var/log/pods"
        assert "emptyDir" in volumes[mounts["/var/lib/tailrace"]["name"]]
        annotations = patched["metadata"]["annotations"]
        assert annotations[conventions.INJECTED_ANNOTATION] == "true"
        assert annotations[conventions.WORKLOAD_ANNOTATION] == "Function/hello"

        # Reviewing the patched pod again changes nothing.
        assert decoded_patch(await hook.review(patched)) == []


async def test_plain_sidecar_before_kubernetes_1_29(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    async with start_webhook(
        k8s, control_server.url, tmp_path, kubernetes_version="1.28.0"
    ) as hook:
        await apply_function(k8s, "legacy")
        pod = deployment_pod("legacy")
        patched = jsonpatch.apply_patch(pod, await patched_by(hook, pod))

        kubernetes_validate.validate(patched, "1.28.0", strict=True)
        [collector] = collectors(patched)
        assert patched["spec"]["containers"][-1]["name"] == conventions.COLLECTOR_CONTAINER
        assert "restartPolicy" not in collector
        assert "initContainers" not in patched["spec"]
        assert decoded_patch(await hook.review(patched)) == []


async def test_workload_collector_resources_override_the_defaults(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    async with native_webhook(k8s, control_server, tmp_path) as hook:
        resources = {"requests": {"cpu": "50m"}, "limits": {"memory": "256Mi", "cpu": "1"}}
        await apply_function(k8s, "sized", collector={"resources": resources})
        pod = deployment_pod("sized")
        patched = jsonpatch.apply_patch(pod, await patched_by(hook, pod))

        [collector] = collectors(patched)
        assert collector["resources"]["requests"]["cpu"] == "50m"
        assert collector["resources"]["limits"] == {"memory": "256Mi", "cpu": "1"}


async def test_pod_no_workload_selects_is_allowed_unchanged(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    async with native_webhook(k8s, control_server, tmp_path) as hook:
        await apply_function(k8s, "hello")
        await patched_by(hook, deployment_pod("hello"))  # the index knows "hello" now

        metrics = hook.operator.metrics
        labels = {"outcome": "not_selected"}
        before = metrics.get_sample_value("tailrace_operator_injections_total", labels) or 0

        response = await hook.review(deployment_pod("unrelated"))

        assert decoded_patch(response) == []
        assert metrics.get_sample_value("tailrace_operator_injections_total", labels) == before + 1
        assert (
            metrics.get_sample_value("tailrace_operator_webhook_duration_seconds_count") or 0
        ) >= 2


async def test_pod_selected_by_two_workloads_gets_one_collector_and_a_warning(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    async with native_webhook(k8s, control_server, tmp_path) as hook:
        await apply_function(k8s, "hello")
        wide = function_body(
            "wide", selector={"matchExpressions": [{"key": "app", "operator": "Exists"}]}
        )
        await k8s.post(FUNCTIONS.format(ns="default"), json=wide)
        pod = deployment_pod("hello")

        async def warned() -> dict[str, Any]:
            response = await hook.review(pod)
            return response if response.get("warnings") else {}

        response = await eventually_async(warned)
        patched = jsonpatch.apply_patch(pod, decoded_patch(response))
        [collector] = collectors(patched)
        env = {item["name"]: item.get("value") for item in collector["env"]}
        assert env[conventions.ENV_WORKLOAD] == "Function/hello"
        assert "Function/wide" in response["warnings"][0]


async def test_opted_out_pod_is_not_injected(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    async with native_webhook(k8s, control_server, tmp_path) as hook:
        await apply_function(k8s, "hello")
        await patched_by(hook, deployment_pod("hello"))
        pod = deployment_pod("hello")
        pod["metadata"]["annotations"] = {conventions.INJECT_ANNOTATION: "false"}

        assert decoded_patch(await hook.review(pod)) == []


async def test_node_mode_workload_injects_nothing(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    async with native_webhook(k8s, control_server, tmp_path) as hook:
        await apply_function(k8s, "hello")
        await apply_function(k8s, "noded", collector={"mode": "node"})
        await patched_by(hook, deployment_pod("hello"))

        async def node_mode_counted() -> bool:
            response = await hook.review(deployment_pod("noded"))
            assert decoded_patch(response) == []
            value = hook.operator.metrics.get_sample_value(
                "tailrace_operator_injections_total", {"outcome": "node_mode"}
            )
            return bool(value)

        await eventually_async(node_mode_counted)


async def test_pod_security_namespace_is_not_injected_and_status_says_why(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    async with native_webhook(k8s, control_server, tmp_path) as hook:
        labels = {"pod-security.kubernetes.io/enforce": "restricted"}
        await k8s.post(
            "/api/v1/namespaces", json={"metadata": {"name": "locked", "labels": labels}}
        )
        await apply_function(k8s, "guarded", namespace="locked")

        def says_why() -> dict[str, Any]:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "locked", "guarded") or {}
            for item in obj.get("status", {}).get("conditions", []):
                if item["type"] == "CollectorInjected" and item["reason"] == "PodSecurity":
                    return dict(item)
            return {}

        injected = await eventually(says_why)
        assert injected["status"] == "False"
        assert "restricted" in injected["message"]
        response = await hook.review(deployment_pod("guarded", "locked"), "locked")
        assert decoded_patch(response) == []
        assert any("Pod Security" in warning for warning in response.get("warnings", []))


@pytest.mark.parametrize(("git_version", "native"), [("v1.30.2", True), ("v1.28.9+k3s1", False)])
async def test_sidecar_kind_follows_the_detected_api_server_version(
    k8s: KubernetesAPI,
    control_server: FakeControlServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    git_version: str,
    native: bool,
) -> None:
    k8s.git_version = git_version
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": str(k8s.url).rstrip("/")}}],
                "users": [{"name": "test", "user": {"token": "t"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
                "current-context": "kmock",
            }
        )
    )
    # The kubernetes client reads KUBECONFIG at import time (a process edge).
    monkeypatch.setattr(
        kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    async with start_webhook(k8s, control_server.url, tmp_path, kubernetes_version="") as hook:
        await apply_function(k8s, "probe")
        pod = deployment_pod("probe")
        patched = jsonpatch.apply_patch(pod, await patched_by(hook, pod))
        if native:
            assert patched["spec"]["initContainers"][0]["name"] == conventions.COLLECTOR_CONTAINER
        else:
            assert patched["spec"]["containers"][-1]["name"] == conventions.COLLECTOR_CONTAINER
