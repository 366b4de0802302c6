"""The Kubernetes API (kmock, made a little more like a real API server), a fake control server,
and the real operator running in-process against both."""

from __future__ import annotations

import datetime
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import kmock
import pytest
from kmock._internal import apps, enums, k8s_dicts, parsing, references, rendering

from tests.operator import harness

GROUP_VERSION = harness.GROUP_VERSION
CRDS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "tailrace" / "crds"


@attrs.define(kw_only=True)
class KubernetesAPI(kmock.KubernetesEmulator):
    """kmock's emulator with what kopf needs of a real API server (TESTING.md lists the gaps):
    resourceVersion/uid/generation stamping, generateName, JSON patches with a failing `test`
    answered 422, and watches that resume from a resourceVersion instead of replaying everything.
    """

    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _current: int = attrs.field(default=0, init=False)
    _created: dict[int, dict[str, Any]] = attrs.field(factory=dict, init=False)
    git_version: str = "v1.30.2"  # what GET /version reports

    def _next_version(self) -> str:
        self._current = next(self._versions)
        return str(self._current)

    async def _handle(self, request: rendering.Request) -> Any:
        if request.resource is not None and request.action in (
            enums.action.CREATE,
            enums.action.UPDATE,
            enums.action.DELETE,
        ):
            async with self._lock:
                await self._mutate(request)
        # Skip KubernetesEmulator._handle: its state changes are what _mutate replaces.
        return await apps.RawHandler._handle(self, request)

    async def _mutate(self, request: rendering.Request) -> None:
        resource = request.resource
        assert resource is not None
        bus = self._buses[resource]
        if request.action == enums.action.CREATE:
            raw = json.loads(json.dumps(request.data))
            metadata = raw.setdefault("metadata", {})
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
            namespace = request.namespace or metadata.get("namespace")
            if namespace:
                metadata["namespace"] = namespace
            key = (resource, namespace, metadata["name"])
            if key in self._objects and not self._objects[key].deleted:
                raise kmock.KubernetesError(status=409, reason="AlreadyExists")
            metadata.update(
                uid=str(uuid.uuid4()),
                generation=1,
                resourceVersion=self._next_version(),
                creationTimestamp=_now(),
            )
            if key in self._objects:
                self._objects[key].create(raw)
            else:
                self._objects[key] = raw
            self._created[request.id] = raw
            await bus.put({"type": "ADDED", "object": raw})
            return
        key = (resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        obj = self._objects[key]
        if request.action == enums.action.DELETE:
            if obj.get("metadata", {}).get("finalizers"):
                if not obj["metadata"].get("deletionTimestamp"):
                    obj.patch({"metadata": {"deletionTimestamp": _now()}})
                    obj.patch({"metadata": {"resourceVersion": self._next_version()}})
                    await bus.put({"type": "MODIFIED", "object": obj.raw})
                return
            await self._remove(resource, obj)
            return
        before = obj.raw
        if isinstance(request.data, list):
            try:
                after = jsonpatch.apply_patch(before, request.data)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(err)) from err
            obj.history.append(after)
        else:
            obj.patch(request.data)
        after = obj.raw
        stamps: dict[str, Any] = {"resourceVersion": self._next_version()}
        if request.subresource is None and before.get("spec") != after.get("spec"):
            stamps["generation"] = int(before.get("metadata", {}).get("generation", 1)) + 1
        obj.patch({"metadata": stamps})
        metadata = obj.raw.get("metadata", {})
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            await self._remove(resource, obj)
        else:
            await bus.put({"type": "MODIFIED", "object": obj.raw})

    async def _remove(self, resource: references.resource, obj: k8s_dicts.Object) -> None:
        obj.patch({"metadata": {"resourceVersion": self._next_version()}})
        raw = obj.raw
        obj.delete()
        await self._buses[resource].put({"type": "DELETED", "object": raw})

    async def _serve_create(self, request: rendering.Request) -> Any:
        return self._created.pop(request.id)

    async def _serve_list(self, request: rendering.Request) -> Any:
        listing = await super()._serve_list(request)
        listing["metadata"]["resourceVersion"] = str(self._current)
        return listing

    async def _serve_watch(self, request: rendering.Request) -> Any:
        yield b""
        assert request.resource is not None
        since = int(request.params.get("resourceVersion") or 0)
        bus = self._buses[request.resource]
        async with self._lock:
            marker = await bus.mark()
            snapshot = self._current
            events = [
                {"type": "ADDED", "object": obj.raw}
                for (resource, namespace, _), obj in self._objects.items()
                if resource == request.resource
                and not obj.deleted
                and request.namespace in (None, namespace)
                and _version(obj.raw) > since
            ]
        try:
            for event in events:
                yield event
            async for event in bus.stream(since=marker):
                obj = event.get("object", {})
                namespace = obj.get("metadata", {}).get("namespace")
                if request.namespace not in (None, namespace):
                    continue
                if _version(obj) > max(since, snapshot):
                    yield event
        finally:
            await bus.unmark(marker)

    async def _serve_server_version(self, request: rendering.Request) -> Any:
        major, minor = self.git_version.lstrip("v").split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.git_version,
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def declare(self) -> None:
        """The built-in resources plus Tailrace's CRDs, as API discovery shows them."""
        # The kubernetes client asks for /version/ (with the slash), which kmock does not serve.
        self.fallback["get /version/"] << self._serve_server_version
        self.resources.load_bundled()
        for plural, kind, short in (
            ("functions", "Function", "fn"),
            ("pipelines", "Pipeline", "pl"),
        ):
            self.resources[f"{GROUP_VERSION}/{plural}"] = kmock.ResourceInfo(
                kind=kind,
                singular=kind.lower(),
                namespaced=True,
                verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
                shortnames={short},
                subresources={"status"},
            )

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (references.resource(resource), namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return self._objects[key].raw

    def all(self, resource: str) -> list[dict[str, Any]]:
        wanted = references.resource(resource) if isinstance(resource, str) else resource
        return [
            obj.raw
            for (res, _, _), obj in self._objects.items()
            if res == wanted and not obj.deleted
        ]


def _version(raw: dict[str, Any]) -> int:
    value = raw.get("metadata", {}).get("resourceVersion") or "0"
    return int(value) if str(value).isdigit() else 0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    # kmock 0.8 reads /api/v1/namespaces[/NAME] as "namespace <nothing>" instead of the namespaces
    # resource, so kopf cannot list or watch namespaces; a real API server has no such ambiguity.
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (3, 4):
        return parsing.ParsedPath(
            "", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None
        )
    return _kmock_parse_path(path)


@pytest.fixture
async def k8s(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KubernetesAPI]:
    monkeypatch.setattr(parsing, "parse_path", _parse_path)
    async with KubernetesAPI() as api, kmock.Server(api):
        api.declare()
        yield api


@pytest.fixture
async def control_server() -> AsyncIterator[harness.FakeControlServer]:
    fake = harness.FakeControlServer()
    port = harness.free_port()
    fake.url = f"http://127.0.0.1:{port}"
    async with harness.serving(fake.app(), port):
        yield fake
