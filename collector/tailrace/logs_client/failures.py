"""What can go wrong in `tailrace logs`, each with the exit code it ends the command with.

Exit codes: 0 done, 1 the server is unreachable or failing, 2 bad usage or a parameter the server
refused, 3 not found, 4 unauthorized or forbidden. Scripts can tell "no such workload" from
"wrong token" from "server down" without parsing messages.
"""

from __future__ import annotations

EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4


class ClientFailure(Exception):
    """A failure the command reports in one line on stderr and ends with `exit_code`."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        # A failed follow may retry a transient failure (503, 429, a lost connection).
        self.transient = transient


class UsageError(ClientFailure):
    exit_code = EXIT_USAGE


class NotFound(ClientFailure):
    exit_code = EXIT_NOT_FOUND


class Denied(ClientFailure):
    exit_code = EXIT_DENIED


class Unavailable(ClientFailure):
    exit_code = EXIT_UNAVAILABLE
