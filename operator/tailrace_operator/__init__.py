"""The Tailrace operator: Function and Pipeline resources, collector injection, status, system logs.

The control plane of Tailrace. It mirrors the cluster (workloads, their pods and the Events about
those pods) to the server's control API and injects the collector into selected pods. It reaches the
data plane only through `tailrace.conventions` and HTTP; the CLI calls `runner.run(settings)`.
"""

from tailrace_operator.settings import OperatorSettings

__all__ = ["OperatorSettings"]
