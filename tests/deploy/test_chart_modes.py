"""What each way of installing renders: the SQLite StatefulSet or the PostgreSQL Deployment, the
node agents, Prometheus discovery, the Ingress and the NetworkPolicies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_default_server_is_one_statefulset_replica_with_sqlite_on_a_claim(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("default")
    assert not render.find("Deployment", "demo-tailrace-server")
    server = render.one("StatefulSet", "demo-tailrace-server")
    assert server["spec"]["replicas"] == 1
    assert server["spec"]["serviceName"] == "demo-tailrace-server-headless"
    (claim,) = server["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    args = render.args("StatefulSet", "demo-tailrace-server")
    assert args[args.index("--store") + 1] == "sqlite:////data/tailrace.db"
    mounts = server["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data"} in mounts
    # A budget on one replica would block every node drain.
    assert not render.find("PodDisruptionBudget")


def test_server_without_persistence_keeps_sqlite_on_an_empty_dir(
    rendered: Callable[[str], Any],
) -> None:
    server = rendered("no-persistence").one("StatefulSet", "demo-tailrace-server")
    assert "volumeClaimTemplates" not in server["spec"]
    volumes = server["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in volumes


def test_postgresql_turns_the_server_into_a_replicated_deployment(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("postgresql")
    assert not render.find("StatefulSet")
    server = render.one("Deployment", "demo-tailrace-server")
    assert server["spec"]["replicas"] == 3
    spec = server["spec"]["template"]["spec"]
    args = render.args("Deployment", "demo-tailrace-server")
    # The URL is neither in the manifest nor in the process arguments: the server reads it from
    # TAILRACE_STORE_URL, which comes from the Secret.
    assert "--store" not in args
    env = {item["name"]: item for item in spec["containers"][0]["env"]}
    assert env["TAILRACE_STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-tailrace-store",
        "key": "url",
    }
    store = render.one("Secret", "demo-tailrace-store")
    assert store["stringData"]["url"].startswith("postgresql://")
    assert not any(volume["name"] == "data" for volume in spec["volumes"])
    budget = render.one("PodDisruptionBudget", "demo-tailrace-server")
    assert budget["spec"]["maxUnavailable"] == 1
    # Every replica signs cursors with the same key.
    assert "/etc/tailrace/tokens/cursor-secret" in args


def test_postgresql_url_can_come_from_an_existing_secret(rendered: Callable[[str], Any]) -> None:
    render = rendered("postgresql-existing-secret")
    assert not render.find("Secret", "demo-tailrace-store")
    server = render.one("Deployment", "demo-tailrace-server")
    env = {
        item["name"]: item for item in server["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TAILRACE_STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "logs-db",
        "key": "dsn",
    }


def test_server_listens_on_all_interfaces_with_tokens_and_probes(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("default")
    args = render.args("StatefulSet", "demo-tailrace-server")
    assert args[0] == "server"
    assert args[args.index("--http-addr") + 1] == "0.0.0.0:8080"
    assert args[args.index("--grpc-addr") + 1] == "0.0.0.0:7070"
    assert args[args.index("--tokens-file") + 1] == "/etc/tailrace/tokens/tokens"
    assert args[args.index("--ingest-tokens-file") + 1] == "/etc/tailrace/tokens/ingest-tokens"
    assert "--insecure" not in args
    assert "--kubernetes-auth" not in args
    container = render.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = render.one("Service", "demo-tailrace-server")
    ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert ports == {"http": 8080, "grpc": 7070}


def test_operator_talks_to_the_server_and_injects_the_same_image(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("default")
    args = render.args("Deployment", "demo-tailrace-operator")
    host = "demo-tailrace-server.tailrace-system.svc.cluster.local"
    assert args[0] == "operator"
    assert args[args.index("--server") + 1] == f"http://{host}:8080"
    assert args[args.index("--agent-server") + 1] == f"{host}:7070"
    assert args[args.index("--token-file") + 1] == "/etc/tailrace/tokens/ingest-token"
    assert args[args.index("--webhook-cert") + 1] == "/etc/tailrace/webhook/tls.crt"
    assert args[args.index("--health-addr") + 1] == "0.0.0.0:8081"
    operator = render.one("Deployment", "demo-tailrace-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    webhook_service = render.one("Service", "demo-tailrace-webhook")
    assert {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"} in (
        webhook_service["spec"]["ports"]
    )


def test_node_mode_runs_an_agent_per_node_that_pushes_to_the_server(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("node-mode")
    args = render.args("DaemonSet", "demo-tailrace-agent")
    assert args[:7] == [
        "agent",
        "--pods-dir",
        "/var/log/pods",
        "--server",
        "demo-tailrace-server.tailrace-system.svc.cluster.local:7070",
        "--state-dir",
        "/var/lib/tailrace",
    ]
    assert args[args.index("--metrics-addr") + 1] == "0.0.0.0:9102"
    spec = render.one("DaemonSet")["spec"]["template"]["spec"]
    env = {item["name"]: item for item in spec["containers"][0]["env"]}
    assert env["TAILRACE_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "--pod-uid" not in args
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}.items() <= (
        spec["tolerations"][0].items()
    )
    assert not rendered("default").find("DaemonSet")


def test_prometheus_annotations_name_each_metrics_port(rendered: Callable[[str], Any]) -> None:
    render = rendered("monitoring")
    expected = {
        "StatefulSet/demo-tailrace-server": "8080",
        "Deployment/demo-tailrace-operator": "8081",
        "DaemonSet/demo-tailrace-agent": "9102",
    }
    for name, port in expected.items():
        kind, _, resource = name.partition("/")
        annotations = render.one(kind, resource)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == port


def test_service_monitor_and_pod_monitor_target_named_metrics_ports(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("monitoring")
    monitor = render.one("ServiceMonitor")
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    service_ports = {
        port["name"] for service in render.find("Service") for port in service["spec"]["ports"]
    }
    assert ports <= service_ports
    selected = [
        service
        for service in render.find("Service")
        if _selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    ]
    # Each pod is scraped once: the StatefulSet's headless Service is left out.
    assert sorted(service["metadata"]["name"] for service in selected) == [
        "demo-tailrace-server",
        "demo-tailrace-webhook",
    ]
    pod_monitor = render.one("PodMonitor")
    agent = render.one("DaemonSet")["spec"]["template"]
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert (
        pod_monitor["spec"]["selector"]["matchLabels"].items()
        <= agent["metadata"]["labels"].items()
    )
    assert not rendered("default").find("ServiceMonitor")
    assert not rendered("default").find("PodMonitor")


def test_ingress_routes_the_api_host_to_the_http_port(rendered: Callable[[str], Any]) -> None:
    ingress = rendered("ingress").one("Ingress", "demo-tailrace-server")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "logs.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "demo-tailrace-server", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"hosts": ["logs.example.com"], "secretName": "logs-tls"}]


def test_network_policies_admit_only_served_ports_and_keep_the_release_talking(
    rendered: Callable[[str], Any],
) -> None:
    render = rendered("network-policy")
    policies = {policy["metadata"]["name"]: policy for policy in render.find("NetworkPolicy")}
    assert set(policies) == {
        "demo-tailrace-server",
        "demo-tailrace-operator",
        "demo-tailrace-agent",
    }
    server_rules = policies["demo-tailrace-server"]["spec"]["ingress"]
    http_rule = next(rule for rule in server_rules if rule["ports"][0]["port"] == "http")
    # The operator (control API) and the helm test pod are release pods, always admitted.
    assert {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "tailrace",
                "app.kubernetes.io/instance": "demo",
            }
        }
    } in http_rule["from"]
    assert {"namespaceSelector": {"matchLabels": {"team": "platform"}}} in http_rule["from"]
    grpc_rule = next(rule for rule in server_rules if rule["ports"][0]["port"] == "grpc")
    # Collectors run beside workloads in every namespace.
    assert "from" not in grpc_rule
    operator_ports = [
        rule["ports"][0]["port"] for rule in policies["demo-tailrace-operator"]["spec"]["ingress"]
    ]
    assert operator_ports == ["webhook", "health"]


def test_kubernetes_auth_admits_listed_service_accounts_to_ingest(
    helm_template: Callable[[dict[str, Any]], Any],
) -> None:
    docs = helm_template(
        {
            "auth": {
                "kubernetes": {
                    "enabled": True,
                    "ingestServiceAccounts": ["system:serviceaccount:team-a:default"],
                }
            }
        }
    )
    server = next(doc for doc in docs if doc["kind"] == "StatefulSet")
    args = server["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (
        args[args.index("--ingest-service-account") + 1] == "system:serviceaccount:team-a:default"
    )
    assert server["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def test_helm_test_pod_checks_readiness_and_an_authorised_logs_query(
    rendered: Callable[[str], Any],
) -> None:
    pod = rendered("default").one("Pod", "demo-tailrace-test-api")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["labels"]["tailrace.dev/inject"] == "false"
    script = pod["spec"]["containers"][0]["args"][0]
    compile(script, "helm-test", "exec")
    assert '"/readyz"' in script
    assert "/v1/namespaces/" in script
    (token_volume,) = [volume for volume in pod["spec"]["volumes"] if "secret" in volume]
    assert token_volume["secret"]["items"] == [{"key": "read-token", "path": "read-token"}]
    assert not rendered("no-persistence").find("Pod")


def test_notes_tell_how_to_reach_the_api_and_tail_logs(install_notes: str) -> None:
    assert "kubectl -n tailrace-system port-forward svc/demo-tailrace-server 8080:8080" in (
        install_notes
    )
    assert "get secret demo-tailrace-tokens -o jsonpath='{.data.read-token}'" in install_notes
    assert 'curl -H "Authorization: Bearer $TAILRACE_TOKEN"' in install_notes
    assert "tailrace logs function/hello -n default -f" in install_notes
    assert "helm test demo -n tailrace-system" in install_notes


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and In/NotIn/Exists/DoesNotExist) against labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        value = labels.get(key)
        matched = {
            "In": value in expression.get("values", []),
            "NotIn": value not in expression.get("values", []),
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True
