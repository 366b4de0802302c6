"""`tailrace logs`: read and follow logs from a Tailrace server, like `kubectl logs` and stern.

A client of the native HTTP API only: it never imports the server or the agent. `main` is what
`tailrace logs ...` calls with the arguments after `logs`.
"""

from tailrace.logs_client.command import main

__all__ = ["main"]
