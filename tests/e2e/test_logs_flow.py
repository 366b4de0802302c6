"""The walking skeleton end to end: real `tailrace server` and `tailrace agent` processes."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tailrace import demo
from tests.support import processes


@pytest.fixture
def server(tmp_path: Path) -> Iterator[processes.ServerProcess]:
    srv = processes.server_process(tmp_path)
    srv.start().wait_ready()
    yield srv
    srv.stop()


def _pod(pods_dir: Path, name: str = "hello-1") -> demo.PodLogs:
    return demo.PodLogs(pods_dir, "demo", name, str(uuid.uuid4()))


def _messages(server: processes.ServerProcess, pod: str, container: str = "app") -> list[str]:
    r = httpx.get(
        f"{server.url}/v1/namespaces/demo/pods/{pod}/logs",
        params={"container": container, "limit": 5000},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text.splitlines()


def test_lines_written_to_cri_files_are_served_by_the_pod_route(
    server: processes.ServerProcess, tmp_path: Path
) -> None:
    pods_dir = tmp_path / "pods"
    pod = _pod(pods_dir)
    for i in range(50):
        pod.write("app", f"line {i}", "stdout" if i % 5 else "stderr")
    agent = processes.agent_process(tmp_path, pods_dir, server.grpc_addr).start()
    with processes.running(agent):
        processes.wait_until(lambda: len(_messages(server, pod.pod)) == 50)
        assert _messages(server, pod.pod) == [f"line {i}" for i in range(50)]
        r = httpx.get(
            f"{server.url}/v1/namespaces/demo/pods/{pod.pod}/logs",
            params={"container": "app", "limit": 3},
            headers={"Accept": "application/json"},
        )
        body = r.json()
        first = body["records"][0]
        assert first["message"] == "line 0"
        assert first["namespace"] == "demo"
        assert first["pod"] == pod.pod
        assert first["container"] == "app"
        assert first["stream"] == "stderr"
        assert first["time"].endswith("Z")
        assert {"id", "level", "executionId", "workload", "truncated", "attrs"} <= first.keys()
        assert body["nextCursor"]


def test_workload_route_serves_the_logs_of_pods_its_selector_matches(
    server: processes.ServerProcess, tmp_path: Path
) -> None:
    pods_dir = tmp_path / "pods"
    pod = _pod(pods_dir, "hello-abc")
    fn = demo.workload_object("Function", "demo", "hello", str(uuid.uuid4()), "hello")
    assert httpx.put(f"{server.url}/v1/namespaces/demo/functions/hello", json=fn).status_code == 200
    pod_json = demo.pod_object(pod, {"app": "hello"}, ["app"])
    r = httpx.put(f"{server.url}/v1/namespaces/demo/pods/{pod.pod}", json=pod_json)
    assert r.status_code == 200, r.text
    pod.write("app", '{"level":"warn","msg":"disk almost full","executionId":"e-1"}')
    pod.write("app", "plain hello")
    agent = processes.agent_process(tmp_path, pods_dir, server.grpc_addr).start()
    url = f"{server.url}/v1/namespaces/demo/functions/hello/logs"

    def records() -> list[dict[str, object]]:
        r = httpx.get(url, params={"stream": "stdout"}, headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        return list(r.json()["records"])

    with processes.running(agent):
        processes.wait_until(lambda: len(records()) == 2)
        warn, plain = records()
        # The message is the line as written (lossless, as kubectl logs prints it); level,
        # execution id and HTTP fields are extracted from it.
        assert warn["message"] == '{"level":"warn","msg":"disk almost full","executionId":"e-1"}'
        assert warn["level"] == "WARN"
        assert warn["executionId"] == "e-1"
        assert warn["workload"] == {"kind": "Function", "name": "hello"}
        assert plain["message"] == "plain hello"
        assert plain["level"] == "INFO"


def test_unknown_workload_is_a_404_with_a_json_error_body(
    server: processes.ServerProcess,
) -> None:
    r = httpx.get(f"{server.url}/v1/namespaces/demo/functions/nope/logs")
    assert r.status_code == 404
    body = r.json()
    assert set(body) == {"message", "error_code", "details"}
    assert "nope" in body["message"]


@pytest.mark.parametrize(
    ("param", "value"),
    [("limit", "-1"), ("limit", "ten"), ("since", "yesterday"), ("order", "sideways")],
)
def test_bad_query_parameter_is_a_400_naming_the_parameter(
    server: processes.ServerProcess, param: str, value: str
) -> None:
    r = httpx.get(f"{server.url}/v1/namespaces/demo/pods/p/logs", params={param: value})
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"]
    assert param in body["message"] + str(body["details"])


def test_malformed_cri_line_is_forwarded_as_is_and_the_next_lines_survive(
    server: processes.ServerProcess, tmp_path: Path
) -> None:
    pods_dir = tmp_path / "pods"
    pod = _pod(pods_dir)
    pod.write("app", "before")
    pod.append_raw("app", b"this is not a CRI line at all\n")
    pod.write("app", "after")
    agent = processes.agent_process(tmp_path, pods_dir, server.grpc_addr).start()
    with processes.running(agent):
        processes.wait_until(lambda: len(_messages(server, pod.pod)) == 3)
        assert _messages(server, pod.pod) == ["before", "this is not a CRI line at all", "after"]


def test_agent_started_before_the_server_retries_and_delivers(tmp_path: Path) -> None:
    pods_dir = tmp_path / "pods"
    pod = _pod(pods_dir)
    for i in range(10):
        pod.write("app", f"early {i}")
    srv = processes.server_process(tmp_path)
    agent = processes.agent_process(tmp_path, pods_dir, srv.grpc_addr).start()
    with processes.running(srv, agent):
        processes.wait_until(lambda: "retry" in agent.output().lower(), timeout_s=20)
        srv.start().wait_ready()
        processes.wait_until(lambda: len(_messages(srv, pod.pod)) == 10, timeout_s=30)
        assert _messages(srv, pod.pod) == [f"early {i}" for i in range(10)]


def test_agent_killed_mid_stream_loses_and_duplicates_nothing(
    server: processes.ServerProcess, tmp_path: Path
) -> None:
    pods_dir = tmp_path / "pods"
    pod = _pod(pods_dir)
    rng = random.Random(3)
    written = 0
    agent = processes.agent_process(tmp_path, pods_dir, server.grpc_addr)
    with processes.running(agent):
        for _round in range(4):
            agent.start()
            for _ in range(rng.randint(200, 600)):
                pod.write("app", f"n={written:06d}")
                written += 1
            time.sleep(rng.uniform(0.05, 0.4))
            agent.kill()
        agent.start()
        processes.wait_until(lambda: len(_messages(server, pod.pod)) >= written, timeout_s=60)
        time.sleep(1.0)  # anything duplicated late would show up now
        assert _messages(server, pod.pod) == [f"n={i:06d}" for i in range(written)]


def _duplicates(server: processes.ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for line in text.splitlines():
        if line.startswith("tailrace_server_ingest_records_total{") and (
            'outcome="duplicate"' in line and 'protocol="tailrace"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_agent_with_a_new_state_folder_resumes_where_the_server_is(
    server: processes.ServerProcess, tmp_path: Path
) -> None:
    pods_dir = tmp_path / "pods"
    pod = _pod(pods_dir)
    for i in range(100):
        pod.write("app", f"first {i}")
    first = processes.agent_process(tmp_path, pods_dir, server.grpc_addr).start()
    with processes.running(first):
        processes.wait_until(lambda: len(_messages(server, pod.pod)) == 100)
    for i in range(50):
        pod.write("app", f"second {i}")
    # A node agent's state may live in an emptyDir: a new, empty state folder.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    second = processes.agent_process(fresh, pods_dir, server.grpc_addr).start()
    with processes.running(second):
        processes.wait_until(lambda: len(_messages(server, pod.pod)) == 150)
        expected = [f"first {i}" for i in range(100)] + [f"second {i}" for i in range(50)]
        assert _messages(server, pod.pod) == expected
        # It asked the server where to resume instead of sending the file again.
        assert _duplicates(server) == 0


def test_file_truncated_while_no_agent_ran_is_read_again_under_a_new_generation(
    server: processes.ServerProcess, tmp_path: Path
) -> None:
    pods_dir = tmp_path / "pods"
    pod = _pod(pods_dir)
    for i in range(40):
        pod.write("app", f"before {i}")
    first = processes.agent_process(tmp_path, pods_dir, server.grpc_addr).start()
    with processes.running(first):
        processes.wait_until(lambda: len(_messages(server, pod.pod)) == 40)
    # Truncated in place (no copy left beside it), then written again.
    with pod.path("app").open("r+b") as f:
        f.truncate(0)
    for i in range(5):
        pod.write("app", f"after {i}")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    second = processes.agent_process(fresh, pods_dir, server.grpc_addr).start()
    with processes.running(second):
        processes.wait_until(lambda: len(_messages(server, pod.pod)) >= 45)
        expected = [f"before {i}" for i in range(40)] + [f"after {i}" for i in range(5)]
        assert _messages(server, pod.pod) == expected
