"""Who may read: static tokens, TokenReview + SubjectAccessReview (kmock), rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client

from tailrace.server import auth, ratelimit
from tests.server.conftest import ServerFactory
from tests.server.harness import T0, Line, Running, pod_object

POD_URL = "/v1/namespaces/ns/pods/hello-abc/logs"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def guarded(make_server: ServerFactory, tmp_path: Path) -> Running:
    readers = tmp_path / "tokens"
    readers.write_text("# readers\nns-reader ns\n\nall-reader *\nteam-reader ns,other\n")
    ingesters = tmp_path / "ingest-tokens"
    ingesters.write_text("agent-token *\n")
    authorizer = auth.build(readers, ingesters, kubernetes_auth=False)
    server = await make_server(authorizer=authorizer, ingest_token="agent-token")
    await server.push([Line("secret", T0)])
    return server


async def test_reading_without_a_token_is_401(guarded: Running) -> None:
    response = await guarded.http.get(POD_URL)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error_code"] == "unauthenticated"


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic bnM6cmVhZGVy", "Bearer", "ns-reader"])
async def test_unknown_or_malformed_credentials_are_401(guarded: Running, header: str) -> None:
    response = await guarded.http.get(POD_URL, headers={"Authorization": header})
    assert response.status_code == 401


async def test_token_scoped_to_another_namespace_is_403(guarded: Running) -> None:
    response = await guarded.http.get(
        "/v1/namespaces/elsewhere/pods/x/logs", headers=_bearer("ns-reader")
    )
    assert response.status_code == 403
    assert response.json()["details"] == {"namespace": "elsewhere"}


@pytest.mark.parametrize("token", ["ns-reader", "all-reader", "team-reader"])
async def test_tokens_allowed_in_the_namespace_read(guarded: Running, token: str) -> None:
    response = await guarded.http.get(POD_URL, headers=_bearer(token))
    assert response.status_code == 200
    assert response.text == "secret\n"


async def test_reading_all_namespaces_needs_a_token_for_all(guarded: Running) -> None:
    assert (await guarded.http.get("/v1/logs", headers=_bearer("ns-reader"))).status_code == 403
    allowed = await guarded.http.get("/v1/logs", headers=_bearer("all-reader"))
    assert allowed.text == "secret\n"


async def test_health_and_metrics_are_open(guarded: Running) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await guarded.http.get(path)).status_code == 200


async def test_auth_failures_are_counted(guarded: Running) -> None:
    await guarded.http.get(POD_URL)
    await guarded.http.get("/v1/namespaces/elsewhere/pods/x/logs", headers=_bearer("ns-reader"))
    sample = guarded.registry.get_sample_value
    assert sample("tailrace_server_auth_failures_total", {"reason": "unauthenticated"}) == 1
    assert sample("tailrace_server_auth_failures_total", {"reason": "forbidden"}) == 1


async def test_control_api_needs_an_ingest_token(guarded: Running) -> None:
    assert (await guarded.register()).status_code == 401
    assert (await guarded.register(headers=_bearer("all-reader"))).status_code == 403
    assert (await guarded.register(headers=_bearer("agent-token"))).status_code == 200


async def test_ingest_needs_an_ingest_token(guarded: Running) -> None:
    import grpc

    guarded.ingest_token = "ns-reader"
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await guarded.push([Line("forged", T0 + 1)])
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tokens_file_errors_name_the_line() -> None:
    with pytest.raises(auth.TokensFileError, match="tokens:2"):
        auth.TokenTable.parse("good ns\njust-a-token\n", "tokens")
    with pytest.raises(auth.TokensFileError, match="empty namespace list"):
        auth.TokenTable.parse("tok ,,\n", "tokens")


async def test_rate_limit_per_token_answers_429_with_retry_after(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    readers = tmp_path / "tokens"
    readers.write_text("first *\nsecond *\n")
    server = await make_server(
        authorizer=auth.build(readers, None, kubernetes_auth=False),
        limiter=ratelimit.RateLimiter(rate_per_s=0.01, burst=2),
    )
    first = _bearer("first")
    assert (await server.http.get(POD_URL, headers=first)).status_code == 200
    assert (await server.http.get(POD_URL, headers=first)).status_code == 200
    limited = await server.http.get(POD_URL, headers=first)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error_code"] == "rate_limited"
    assert server.registry.get_sample_value("tailrace_server_rate_limited_total") == 1
    # Another token has its own bucket; health checks are never limited.
    assert (await server.http.get(POD_URL, headers=_bearer("second"))).status_code == 200
    assert (await server.http.get("/healthz")).status_code == 200


async def test_without_auth_the_limit_is_per_client_address(make_server: ServerFactory) -> None:
    server = await make_server(limiter=ratelimit.RateLimiter(rate_per_s=0.01, burst=1))
    assert (await server.http.get(POD_URL)).status_code == 200
    assert (await server.http.get(POD_URL)).status_code == 429


def test_rate_limiter_refills_with_time() -> None:
    now = [0.0]
    limiter = ratelimit.RateLimiter(rate_per_s=2, burst=1, clock=lambda: now[0])
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0
    now[0] = 0.5
    assert limiter.acquire("a") == 0


class _Kubernetes:
    """Canned TokenReview/SubjectAccessReview answers, counting the calls."""

    def __init__(self) -> None:
        self.token_reviews = 0
        self.access_reviews = 0

    def token_review(self, request: kmock.Request) -> dict[str, Any]:
        self.token_reviews += 1
        spec = request.data["spec"]
        user = {"alice-token": "alice", "agent-sa-token": "system:serviceaccount:tr:agent"}.get(
            spec["token"]
        )
        # The agent's projected token is valid only for the audience it was issued for.
        if spec["token"] == "agent-sa-token" and spec.get("audiences") != ["tailrace"]:
            user = None
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": spec,
            "status": {
                "authenticated": user is not None,
                "user": {"username": user} if user else None,
                "audiences": spec.get("audiences"),
            },
        }

    def access_review(self, request: kmock.Request) -> dict[str, Any]:
        self.access_reviews += 1
        spec = request.data["spec"]
        attributes = spec["resourceAttributes"]
        allowed = (
            spec["user"] == "alice"
            and attributes["namespace"] == "ns"
            and (attributes["verb"], attributes["resource"], attributes["subresource"])
            == ("get", "pods", "log")
        )
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
            "status": {"allowed": allowed},
        }


@pytest.fixture
async def kubernetes_api() -> AsyncIterator[tuple[_Kubernetes, str]]:
    canned = _Kubernetes()
    async with kmock.KubernetesScaffold() as handler, kmock.Server(handler) as server:
        handler["post /apis/authentication.k8s.io/v1/tokenreviews"] << canned.token_review
        handler["post /apis/authorization.k8s.io/v1/subjectaccessreviews"] << canned.access_review
        yield canned, str(server.url)


@pytest.fixture
async def kube_guarded(
    make_server: ServerFactory, kubernetes_api: tuple[_Kubernetes, str]
) -> Running:
    _, url = kubernetes_api
    reviewer = auth.KubernetesReviewer(client.ApiClient(client.Configuration(host=url)))
    authorizer = auth.build(
        None,
        None,
        kubernetes_auth=True,
        ingest_service_accounts=["system:serviceaccount:tr:agent"],
        reviewer=reviewer,
    )
    server = await make_server(authorizer=authorizer, ingest_token="agent-sa-token")
    await server.push([Line("cluster secret", T0)])
    return server


async def test_kubernetes_auth_allows_who_may_get_pods_log(
    kube_guarded: Running, kubernetes_api: tuple[_Kubernetes, str]
) -> None:
    canned, _ = kubernetes_api
    before = (canned.token_reviews, canned.access_reviews)
    response = await kube_guarded.http.get(POD_URL, headers=_bearer("alice-token"))
    assert response.status_code == 200
    assert response.text == "cluster secret\n"
    again = await kube_guarded.http.get(POD_URL, headers=_bearer("alice-token"))
    assert again.status_code == 200
    # Both answers were cached: one review of each kind for two requests.
    assert (canned.token_reviews, canned.access_reviews) == (before[0] + 1, before[1] + 1)


async def test_kubernetes_auth_denies_other_namespaces_and_unknown_tokens(
    kube_guarded: Running,
) -> None:
    other = await kube_guarded.http.get(
        "/v1/namespaces/kube-system/pods/x/logs", headers=_bearer("alice-token")
    )
    assert other.status_code == 403
    assert "alice may not get pods/log" in other.json()["message"]
    unknown = await kube_guarded.http.get(POD_URL, headers=_bearer("mallory-token"))
    assert unknown.status_code == 401


async def test_kubernetes_auth_lets_the_agent_service_account_ingest(
    kube_guarded: Running,
) -> None:
    import grpc

    assert await kube_guarded.push([Line("more", T0 + 1)]) == 1
    kube_guarded.ingest_token = "alice-token"
    with pytest.raises(grpc.aio.AioRpcError):
        await kube_guarded.push([Line("not an agent", T0 + 2)])


async def test_review_cache_expires(kubernetes_api: tuple[_Kubernetes, str]) -> None:
    canned, url = kubernetes_api
    now = [0.0]
    reviewer = auth.KubernetesReviewer(
        client.ApiClient(client.Configuration(host=url)), clock=lambda: now[0]
    )
    assert await reviewer.user("mallory-token") is None
    assert await reviewer.user("mallory-token") is None
    assert canned.token_reviews == 1
    now[0] = auth.NEGATIVE_TTL_S + 1
    assert await reviewer.user("mallory-token") is None
    assert canned.token_reviews == 2


async def test_unreachable_kubernetes_api_is_503_not_401(make_server: ServerFactory) -> None:
    from tests.support import processes

    closed = f"http://127.0.0.1:{processes.free_port()}"
    configuration = client.Configuration(host=closed)
    configuration.retries = 0
    reviewer = auth.KubernetesReviewer(client.ApiClient(configuration))
    server = await make_server(authorizer=auth.build(None, None, True, reviewer=reviewer))
    response = await server.http.get(POD_URL, headers=_bearer("alice-token"))
    assert response.status_code == 503
    assert response.json()["error_code"] == "auth_unavailable"


@pytest.fixture
async def deletable(make_server: ServerFactory, tmp_path: Path) -> Running:
    readers = tmp_path / "tokens"
    readers.write_text("ns-reader ns\nns-cleaner ns delete\nother-cleaner other delete\n")
    ingesters = tmp_path / "ingest-tokens"
    ingesters.write_text("agent-token *\n")
    authorizer = auth.build(readers, ingesters, kubernetes_auth=False)
    server = await make_server(authorizer=authorizer, ingest_token="agent-token")
    operator = _bearer("agent-token")
    assert (await server.register(headers=operator)).status_code == 200
    pod = pod_object(labels={"app": "hello"})
    put = await server.http.put("/v1/namespaces/ns/pods/hello-abc", json=pod, headers=operator)
    assert put.status_code == 200, put.text
    await server.push([Line("to be deleted", T0)])
    return server


WORKLOAD_LOGS = "/v1/namespaces/ns/functions/hello/logs"


async def test_a_token_that_may_only_read_may_not_delete_logs(deletable: Running) -> None:
    response = await deletable.http.delete(WORKLOAD_LOGS, headers=_bearer("ns-reader"))
    assert response.status_code == 403
    assert "may not delete" in response.json()["message"]
    still = await deletable.http.get(WORKLOAD_LOGS, headers=_bearer("ns-reader"))
    assert "to be deleted" in still.text


async def test_a_delete_token_for_another_namespace_may_not_delete(deletable: Running) -> None:
    response = await deletable.http.delete(WORKLOAD_LOGS, headers=_bearer("other-cleaner"))
    assert response.status_code == 403


async def test_a_token_with_the_delete_field_may_delete_logs(deletable: Running) -> None:
    response = await deletable.http.delete(WORKLOAD_LOGS, headers=_bearer("ns-cleaner"))
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] >= 1
    after = await deletable.http.get(WORKLOAD_LOGS, headers=_bearer("ns-reader"))
    assert "to be deleted" not in after.text


def test_tokens_file_rejects_an_unknown_third_field() -> None:
    with pytest.raises(auth.TokensFileError, match="third field may only be 'delete'"):
        auth.TokenTable.parse("t ns admin\n")


async def test_kubernetes_user_who_may_get_but_not_delete_pods_log_may_not_delete(
    kube_guarded: Running,
) -> None:
    registered = await kube_guarded.register(headers=_bearer("agent-sa-token"))
    assert registered.status_code == 200, registered.text
    alice = _bearer("alice-token")
    assert (await kube_guarded.http.get(WORKLOAD_LOGS, headers=alice)).status_code == 200
    response = await kube_guarded.http.delete(WORKLOAD_LOGS, headers=alice)
    assert response.status_code == 403
    assert "alice may not delete pods/log" in response.json()["message"]
