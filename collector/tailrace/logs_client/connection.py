"""Where the server is and which token to send: flags, then env, then a kubeconfig-style file.

The file (`~/.config/tailrace/config.yaml`, or `--config`, or `TAILRACE_CONFIG`) names contexts
the way a kubeconfig does, so one machine can read several clusters:

    current-context: prod
    contexts:
      - name: prod
        server: https://logs.example.com
        tokenFile: ~/.config/tailrace/prod.token    # or token: ...
        namespace: shop
      - name: local
        server: http://127.0.0.1:8080
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tailrace import conventions
from tailrace.logs_client import failures, options

DEFAULT_SERVER = f"http://127.0.0.1:{conventions.DEFAULT_HTTP_PORT}"
ENV_CONFIG = "TAILRACE_CONFIG"


@dataclass(frozen=True)
class Connection:
    server: str  # base URL, no trailing slash
    token: str | None
    namespace: str


def normalise_server(value: str) -> str:
    # TAILRACE_SERVER is also the agent's host:port for gRPC; here a bare address means HTTP.
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
    return value


def default_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tailrace" / "config.yaml"


def _load_context(path: Path, name: str | None, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise failures.UsageError(f"config file {path} does not exist")
        if name:
            raise failures.UsageError(f"context {name!r} asked for but {path} does not exist")
        return {}
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise failures.UsageError(f"cannot read config file {path}: {err}") from err
    if not isinstance(document, dict):
        raise failures.UsageError(f"config file {path}: expected a mapping at the top")
    contexts = document.get("contexts") or []
    wanted = name or document.get("current-context")
    if not wanted:
        return {}
    for entry in contexts if isinstance(contexts, list) else []:
        if isinstance(entry, dict) and entry.get("name") == wanted:
            # Accept both the flat form and kubeconfig's `{name, context: {...}}`.
            inner = entry.get("context")
            found = inner if isinstance(inner, dict) else entry
            return {str(k): v for k, v in found.items()}
    raise failures.UsageError(f"config file {path} has no context named {wanted!r}")


def _context_token(context: Mapping[str, Any], path: Path) -> str | None:
    if context.get("token"):
        return str(context["token"])
    token_file = context.get("tokenFile")
    if not token_file:
        return None
    token_path = Path(str(token_file)).expanduser()
    if not token_path.is_absolute():
        token_path = path.parent / token_path
    try:
        return token_path.read_text().strip()
    except OSError as err:
        raise failures.UsageError(f"cannot read tokenFile {token_path}: {err}") from err


def resolve(opts: options.Options, env: Mapping[str, str] | None = None) -> Connection:
    env = os.environ if env is None else env
    explicit = opts.config or env.get(ENV_CONFIG)
    path = Path(explicit).expanduser() if explicit else default_config_path(env)
    context = _load_context(path, opts.context, explicit=bool(explicit))
    server = (
        opts.server
        or env.get(conventions.ENV_SERVER)
        or (str(context["server"]) if context.get("server") else None)
        or DEFAULT_SERVER
    )
    token = opts.token or env.get(conventions.ENV_TOKEN) or _context_token(context, path)
    namespace = opts.namespace or str(context.get("namespace") or "default")
    return Connection(server=normalise_server(server), token=token or None, namespace=namespace)
