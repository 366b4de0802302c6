"""Renders the Helm chart with the real `helm` binary, once per values combination per session.

Every test of the chart reads the manifests through the `rendered` fixture. All combinations are
rendered (and, through `helm_lint`, linted) in parallel the first time a test asks for one.
"""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "tailrace"
EXAMPLES = REPO / "deploy" / "examples"
RELEASE = "demo"
NAMESPACE = "tailrace-system"

Manifest = dict[str, Any]

# Each meaningful way to install the chart, as values overrides. Tests parametrize over the names.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "postgresql": {
        "store": {"postgresql": {"enabled": True, "url": "postgresql://tailrace:pw@db:5432/logs"}},
        "server": {"replicaCount": 3},
    },
    "postgresql-existing-secret": {
        "store": {
            "postgresql": {"enabled": True, "existingSecret": "logs-db", "existingSecretKey": "dsn"}
        },
    },
    "node-mode": {
        "agent": {"daemonset": {"enabled": True}},
        "auth": {"kubernetes": {"enabled": True}},
    },
    "cert-manager": {"webhook": {"certManager": {"enabled": True}}},
    "cert-manager-cluster-issuer": {
        "webhook": {
            "certManager": {
                "enabled": True,
                "issuerRef": {
                    "name": "corp-ca",
                    "kind": "ClusterIssuer",
                    "group": "cert-manager.io",
                },
            }
        }
    },
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        "agent": {"daemonset": {"enabled": True}},
    },
    "ingress": {
        "server": {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
                "hosts": [
                    {"host": "logs.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
                ],
                "tls": [{"hosts": ["logs.example.com"], "secretName": "logs-tls"}],
            }
        }
    },
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "apiFrom": [{"namespaceSelector": {"matchLabels": {"team": "platform"}}}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        },
        "agent": {"daemonset": {"enabled": True}},
    },
    "namespaced-operator": {
        "operator": {"watchNamespaces": ["team-a", "team-b"]},
        "auth": {"existingSecret": "my-tailrace-tokens"},
        "imagePullSecrets": [{"name": "registry"}],
        "commonLabels": {"cost-center": "logs"},
        "commonAnnotations": {"owner": "platform"},
    },
    "no-persistence": {"server": {"persistence": {"enabled": False}}, "tests": {"enabled": False}},
    "everything": {
        "store": {"postgresql": {"enabled": True, "existingSecret": "logs-db"}},
        "agent": {"daemonset": {"enabled": True}},
        "auth": {"kubernetes": {"enabled": True}},
        "webhook": {"certManager": {"enabled": True}},
        "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        "networkPolicy": {"enabled": True},
        "server": {"ingress": {"enabled": True}},
        "operator": {"watchNamespaces": ["team-a"]},
    },
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `combination` runs once per entry of COMBINATIONS."""
    if "combination" in metafunc.fixturenames:
        metafunc.parametrize("combination", list(COMBINATIONS))


def find_helm() -> str:
    """The helm binary on PATH or in <repo>/.tools/bin; CI installs it, so absence is a failure."""
    found = shutil.which("helm") or shutil.which("helm", path=str(REPO / ".tools" / "bin"))
    if found is None:
        pytest.fail(
            "helm is not installed: run `bash ../shared/tools/install-helm .tools/bin` "
            "(scripts/test does) or put helm on PATH",
            pytype=False,
        )
    return found


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


def run_helm(helm: str, *args: str, values: dict[str, Any] | None = None, tmp: Path) -> str:
    command = [helm, *args]
    if values is not None:
        handle, name = tempfile.mkstemp(prefix="values-", suffix=".yaml", dir=tmp)
        with os.fdopen(handle, "w") as values_file:
            yaml.safe_dump(values, values_file)
        command += ["--values", name]
    # No cluster and no user config: helm must not read the developer's kubeconfig or repos.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "KUBECONFIG": str(tmp / "no-kubeconfig"),
        "HELM_CACHE_HOME": str(tmp / "cache"),
        "HELM_CONFIG_HOME": str(tmp / "config"),
        "HELM_DATA_HOME": str(tmp / "data"),
    }
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if done.returncode != 0:
        raise HelmError(done.stderr.strip() or done.stdout.strip())
    return done.stdout


def split_manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def helm() -> str:
    return find_helm()


@pytest.fixture(scope="session")
def helm_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="session")
def helm_template(helm: str, helm_tmp: Path) -> Callable[..., list[Manifest]]:
    """`helm template --include-crds` with these values (and extra flags, such as
    --kube-version); raises HelmError when helm refuses."""

    def render(values: dict[str, Any], *flags: str) -> list[Manifest]:
        text = run_helm(
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--include-crds",
            *flags,
            values=values,
            tmp=helm_tmp,
        )
        return split_manifests(text)

    return render


@pytest.fixture(scope="session", autouse=True)
def _kubernetes_schemas_read_once() -> Iterator[None]:
    """kubernetes-validate parses its multi-megabyte JSON schema files on every call; reading each
    once per session keeps the suite fast. The schemas themselves are untouched."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            kubernetes_validate.utils,
            "schema_contents",
            functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents),
        )
        yield


@pytest.fixture(scope="session")
def helm_lint(helm: str, helm_tmp: Path) -> Callable[[str], str]:
    """`helm lint --strict` of a named combination. All combinations are linted at once, in
    parallel, the first time; a failure is raised for the combination that failed."""
    results: dict[str, str | HelmError] = {}

    def lint_one(name: str) -> str | HelmError:
        try:
            return run_helm(
                helm,
                "lint",
                "--strict",
                str(CHART),
                "--namespace",
                NAMESPACE,
                values=COMBINATIONS[name],
                tmp=helm_tmp,
            )
        except HelmError as err:
            return err

    def lint(name: str) -> str:
        if not results:
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                results.update(zip(COMBINATIONS, pool.map(lint_one, COMBINATIONS), strict=True))
        result = results[name]
        if isinstance(result, HelmError):
            raise result
        return result

    return lint


@pytest.fixture(scope="session")
def rendered(
    helm_template: Callable[[dict[str, Any]], list[Manifest]],
) -> Callable[[str], Rendered]:
    """The manifests of a named combination (see COMBINATIONS), rendered once per session."""
    cache: dict[str, Rendered | HelmError] = {}

    def render_one(name: str) -> Rendered | HelmError:
        try:
            return Rendered(helm_template(COMBINATIONS[name]))
        except HelmError as err:
            return err

    def get(name: str) -> Rendered:
        if not cache:
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                cache.update(zip(COMBINATIONS, pool.map(render_one, COMBINATIONS), strict=True))
        result = cache[name]
        if isinstance(result, HelmError):
            raise result
        return result

    return get


@pytest.fixture(scope="session")
def install_notes(helm: str, helm_tmp: Path) -> str:
    """NOTES.txt as `helm install --dry-run=client` prints it after installing the defaults."""
    output = run_helm(
        helm,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        tmp=helm_tmp,
    )
    return output.split("NOTES:", 1)[1]


@pytest.fixture(scope="session")
def tailrace_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """JSON Schemas of Function and Pipeline, from the chart's crds/ folder."""
    crds = [
        doc
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    return Rendered(crds).crd_schemas()


@pytest.fixture(scope="session")
def chart_metadata() -> Manifest:
    loaded: Manifest = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return loaded


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


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class Rendered:
    """The manifests of one render, with the look-ups the tests share."""

    def __init__(self, docs: list[Manifest]) -> None:
        self.docs = docs

    def find(self, kind: str, name: str | None = None) -> list[Manifest]:
        return [
            doc
            for doc in self.docs
            if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
        ]

    def one(self, kind: str, name: str | None = None) -> Manifest:
        found = self.find(kind, name)
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {doc["kind"] for doc in self.docs}

    def pod_specs(self) -> Iterator[tuple[str, Manifest]]:
        """(Kind/name, pod spec) of every workload and bare Pod, the helm test pod included."""
        for doc in self.docs:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] == "Pod":
                yield name, doc["spec"]
            elif doc["kind"] in WORKLOAD_KINDS:
                yield name, doc["spec"]["template"]["spec"]
            elif doc["kind"] == "CronJob":
                yield name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]

    def containers(self) -> Iterator[tuple[str, Manifest, Manifest]]:
        """(Kind/name/container, container, pod spec) of every container of every pod."""
        for name, spec in self.pod_specs():
            for key in ("initContainers", "containers", "ephemeralContainers"):
                for container in spec.get(key) or []:
                    yield f"{name}/{container['name']}", container, spec

    def crd_schemas(self) -> dict[tuple[str, str], dict[str, Any]]:
        """JSON Schemas of the custom resources whose CRDs are among these manifests."""
        schemas = {}
        for crd in self.find("CustomResourceDefinition"):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = as_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                # apiVersion, kind and metadata are the API server's, whatever the CRD says.
                properties = schema.setdefault("properties", {})
                properties["apiVersion"] = {"const": f"{group}/{version['name']}"}
                properties["kind"] = {"const": kind}
                properties["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = schema
        return schemas

    def args(self, kind: str, name: str) -> list[str]:
        """The first container's args of a workload."""
        spec = self.one(kind, name)["spec"]["template"]["spec"]
        return [str(arg) for arg in spec["containers"][0]["args"]]
