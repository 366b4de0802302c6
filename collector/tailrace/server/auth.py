"""Who may read logs, and who may push them.

Readers present `Authorization: Bearer <token>`. A token is checked against the static tokens file
(constant-time, scoped to namespaces) and, in a cluster, against Kubernetes: a TokenReview names
the user and a SubjectAccessReview asks whether they may `get pods/log` in the namespace. Both
answers are cached briefly so a follower reconnecting or a UI polling does not hammer the API
server. Ingest (gRPC and the control API) is authorized separately, by its own tokens file or by
a TokenReview naming one of the allowed service accounts.

With nothing configured, every request is allowed: the runner then binds loopback only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailrace.server import errors

log = logging.getLogger(__name__)

ALL_NAMESPACES = "*"
POSITIVE_TTL_S = 30.0
NEGATIVE_TTL_S = 5.0
MAX_TOKEN_CHARS = 8192
INGEST_AUDIENCE = "tailrace"  # the projected service-account token of injected collectors


# Third field of a tokens-file line that lets the token delete stored logs too.
DELETE_PERMISSION = "delete"


class AuthConfigError(ValueError):
    """Authentication cannot be set up as configured (bad tokens file, no cluster access)."""


class TokensFileError(AuthConfigError):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    # The namespaces the caller may read; None means every namespace.
    namespaces: frozenset[str] | None
    # Bucket key for rate limiting (never the token itself).
    key: str
    # Whether the caller may also delete stored logs where it may read them.
    may_delete: bool = False

    def may_read(self, namespace: str | None) -> bool:
        if self.namespaces is None:
            return True
        return namespace is not None and namespace in self.namespaces


ANONYMOUS = Principal("anonymous", None, "anonymous")


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Entry:
    token: bytes
    namespaces: frozenset[str] | None
    may_delete: bool


class TokenTable:
    """Static tokens, one `<token> <namespaces> [delete]` per line (docs/interfaces.md)."""

    def __init__(
        self,
        entries: Iterable[
            tuple[str, frozenset[str] | None] | tuple[str, frozenset[str] | None, bool]
        ],
    ) -> None:
        self._entries = [
            _Entry(entry[0].encode(), entry[1], bool(entry[2]) if len(entry) > 2 else False)
            for entry in entries
        ]

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, text: str, source: str = "tokens file") -> TokenTable:
        entries: list[tuple[str, frozenset[str] | None, bool]] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise TokensFileError(
                    f"{source}:{number}: expected '<token> <namespaces> [delete]', "
                    f"got {len(parts)} fields"
                )
            if len(parts) == 3 and parts[2] != DELETE_PERMISSION:
                raise TokensFileError(
                    f"{source}:{number}: the third field may only be {DELETE_PERMISSION!r}, "
                    f"got {parts[2]!r}"
                )
            token, scope = parts[0], parts[1]
            may_delete = len(parts) == 3
            if scope == ALL_NAMESPACES:
                entries.append((token, None, may_delete))
                continue
            namespaces = frozenset(ns.strip() for ns in scope.split(",") if ns.strip())
            if not namespaces:
                raise TokensFileError(f"{source}:{number}: empty namespace list")
            entries.append((token, namespaces, may_delete))
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> TokenTable:
        return cls.parse(path.read_text(), str(path))

    def lookup(self, token: str) -> Principal | None:
        # Compare against every entry so the time taken does not tell which one matched.
        candidate = token.encode()
        found: _Entry | None = None
        for entry in self._entries:
            if hmac.compare_digest(candidate, entry.token) and found is None:
                found = entry
        if found is None:
            return None
        key = token_key(token)
        return Principal(f"token:{key[:8]}", found.namespaces, key, found.may_delete)


@dataclass(slots=True)
class _Cached:
    value: Any
    expires: float


@dataclass(frozen=True, slots=True)
class KubeUser:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)


class KubernetesReviewer:
    """TokenReview + SubjectAccessReview through the synchronous `kubernetes` client, cached."""

    def __init__(
        self,
        api_client: Any,
        clock: Callable[[], float] = time.monotonic,
        positive_ttl_s: float = POSITIVE_TTL_S,
        negative_ttl_s: float = NEGATIVE_TTL_S,
    ) -> None:
        from kubernetes import client

        self._authn = client.AuthenticationV1Api(api_client)
        self._authz = client.AuthorizationV1Api(api_client)
        self._client = client
        self._clock = clock
        self._positive_ttl = positive_ttl_s
        self._negative_ttl = negative_ttl_s
        self._users: dict[tuple[str, str | None], _Cached] = {}
        self._decisions: dict[tuple[str, str], _Cached] = {}

    @classmethod
    def from_environment(cls) -> KubernetesReviewer:
        """In a pod: the service account; elsewhere: the kubeconfig."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            try:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            except config.ConfigException as err:
                raise AuthConfigError(
                    f"--kubernetes-auth needs an in-cluster service account or a kubeconfig: {err}"
                ) from err
        return cls(client.ApiClient())

    def _cached(self, cache: dict[Any, _Cached], key: Any) -> _Cached | None:
        entry = cache.get(key)
        if entry is not None and entry.expires > self._clock():
            return entry
        if entry is not None:
            del cache[key]
        return None

    def _remember(self, cache: dict[Any, _Cached], key: Any, value: Any, ok: bool) -> None:
        if len(cache) > 10_000:
            cache.clear()  # bounded: a flood of junk tokens cannot grow memory
        ttl = self._positive_ttl if ok else self._negative_ttl
        cache[key] = _Cached(value, self._clock() + ttl)

    def _token_review(self, token: str, audience: str | None) -> KubeUser | None:
        spec = self._client.V1TokenReviewSpec(
            token=token, audiences=[audience] if audience else None
        )
        result = self._authn.create_token_review(self._client.V1TokenReview(spec=spec))
        status = result.status
        if status is None or not status.authenticated or status.user is None:
            return None
        if audience and status.audiences is not None and audience not in status.audiences:
            return None
        user = status.user
        return KubeUser(
            username=user.username or "",
            uid=user.uid or "",
            groups=tuple(user.groups or ()),
            extra={k: list(v) for k, v in (user.extra or {}).items()},
        )

    def _access_review(self, user: KubeUser, namespace: str, verb: str = "get") -> bool:
        body = self._client.V1SubjectAccessReview(
            spec=self._client.V1SubjectAccessReviewSpec(
                user=user.username,
                uid=user.uid or None,
                groups=list(user.groups) or None,
                extra=user.extra or None,
                resource_attributes=self._client.V1ResourceAttributes(
                    namespace=namespace, verb=verb, resource="pods", subresource="log"
                ),
            )
        )
        result = self._authz.create_subject_access_review(body)
        return bool(result.status is not None and result.status.allowed)

    async def user(self, token: str, audience: str | None = None) -> KubeUser | None:
        """Who the token belongs to; with `audience`, only if it was issued for that audience."""
        key = (hashlib.sha256(token.encode()).hexdigest(), audience)
        cached = self._cached(self._users, key)
        if cached is not None:
            return cached.value  # type: ignore[no-any-return]
        try:
            user = await asyncio.to_thread(self._token_review, token, audience)
        except Exception as err:
            raise errors.ApiError(
                503, "auth_unavailable", "cannot reach the Kubernetes API to review the token"
            ) from err
        self._remember(self._users, key, user, user is not None)
        return user

    async def may_read(self, user: KubeUser, namespace: str, verb: str = "get") -> bool:
        """`verb` pods/log in `namespace`: get to read logs, delete to delete stored logs."""
        key = (user.username, namespace, verb)
        cached = self._cached(self._decisions, key)
        if cached is not None:
            return bool(cached.value)
        try:
            allowed = await asyncio.to_thread(self._access_review, user, namespace, verb)
        except Exception as err:
            raise errors.ApiError(
                503, "auth_unavailable", "cannot reach the Kubernetes API to check access"
            ) from err
        self._remember(self._decisions, key, allowed, allowed)
        return allowed


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token


class Authorizer:
    """The read side (`authorize`) and the ingest side (`authorize_ingest`) of the server."""

    def __init__(
        self,
        readers: TokenTable | None = None,
        ingesters: TokenTable | None = None,
        kubernetes: KubernetesReviewer | None = None,
        ingest_service_accounts: Iterable[str] = (),
        on_failure: Callable[[str], None] = lambda reason: None,
        ingest_audience: str | None = INGEST_AUDIENCE,
    ) -> None:
        self.readers = readers
        self.ingesters = ingesters
        self.kubernetes = kubernetes
        self.ingest_service_accounts = frozenset(ingest_service_accounts)
        # Injected collectors present a projected token issued for this audience.
        self.ingest_audience = ingest_audience
        self.on_failure = on_failure

    @property
    def enabled(self) -> bool:
        return self.readers is not None or self.kubernetes is not None

    @property
    def ingest_enabled(self) -> bool:
        return self.ingesters is not None or (
            self.kubernetes is not None and bool(self.ingest_service_accounts)
        )

    def _fail(self, error: errors.ApiError) -> errors.ApiError:
        self.on_failure(error.error_code)
        return error

    def _required_token(self, authorization: str | None) -> str:
        token = bearer_token(authorization)
        if token is None:
            raise self._fail(errors.unauthenticated("a bearer token is required"))
        return token

    async def authorize(self, authorization: str | None, namespace: str | None) -> Principal:
        """The caller, if they may read logs in `namespace` (None: across namespaces)."""
        if not self.enabled:
            return ANONYMOUS
        token = self._required_token(authorization)
        if self.readers is not None:
            principal = self.readers.lookup(token)
            if principal is not None:
                if namespace is not None and not principal.may_read(namespace):
                    raise self._fail(
                        errors.forbidden(f"token may not read namespace {namespace!r}", namespace)
                    )
                # With namespace None, the caller narrows to principal.namespaces itself.
                return principal
        where = f"namespace {namespace!r}" if namespace else "all namespaces"
        # An empty namespace asks the cluster-wide question.
        return await self._kubernetes_principal(token, namespace or "", "get", where)

    async def authorize_delete(self, authorization: str | None, namespace: str) -> Principal:
        """The caller, if they may delete stored logs in `namespace`.

        Reading is not enough: a static token needs the `delete` field, a Kubernetes user needs
        `delete pods/log` in the namespace. (The operator removes a deleted workload's logs
        through the control API, not through this.)
        """
        if not self.enabled:
            return ANONYMOUS
        token = self._required_token(authorization)
        if self.readers is not None:
            principal = self.readers.lookup(token)
            if principal is not None:
                if principal.may_read(namespace) and principal.may_delete:
                    return principal
                raise self._fail(
                    errors.forbidden(
                        f"token may not delete logs in namespace {namespace!r}", namespace
                    )
                )
        return await self._kubernetes_principal(
            token, namespace, "delete", f"namespace {namespace!r}"
        )

    async def _kubernetes_principal(
        self, token: str, namespace: str, verb: str, where: str
    ) -> Principal:
        """The cluster's answer for a token no static table knows: may it `verb` pods/log?"""
        if self.kubernetes is not None:
            user = await self.kubernetes.user(token)
            if user is not None:
                if await self.kubernetes.may_read(user, namespace, verb):
                    return Principal(
                        user.username, None, token_key(token), may_delete=verb == "delete"
                    )
                raise self._fail(
                    errors.forbidden(
                        f"{user.username} may not {verb} pods/log in {where}", namespace or None
                    )
                )
        raise self._fail(errors.unauthenticated("the bearer token is not valid"))

    def authorize_ingest(self, token: str | None) -> bool:
        """Static ingest tokens only; the gRPC side may call this from any thread."""
        if not self.ingest_enabled:
            return True
        if token is None or self.ingesters is None:
            return False
        return self.ingesters.lookup(token) is not None

    async def authorize_ingest_async(self, token: str | None) -> bool:
        """Static ingest tokens, then a TokenReview naming an allowed service account."""
        if self.authorize_ingest(token):
            return True
        if token is None or self.kubernetes is None or not self.ingest_service_accounts:
            self.on_failure("ingest_denied")
            return False
        # Injected collectors hold a projected token for the 'tailrace' audience; the operator
        # and node agents may hold a plain service-account token (the API server's audience).
        user = await self.kubernetes.user(token, self.ingest_audience)
        if user is None and self.ingest_audience:
            user = await self.kubernetes.user(token, None)
        allowed = user is not None and user.username in self.ingest_service_accounts
        if not allowed:
            self.on_failure("ingest_denied")
        return allowed

    async def authorize_control(self, authorization: str | None) -> Principal:
        """The control API is operator traffic: authenticated like ingest."""
        if not self.ingest_enabled:
            if self.enabled:
                # Readers are configured but no ingest credentials: only a read-all token may
                # drive the control API, so a namespace-scoped reader cannot rewrite workloads.
                principal = await self.authorize(authorization, None)
                if principal.namespaces is not None:
                    raise self._fail(
                        errors.forbidden("control API needs a cluster-wide token", None)
                    )
                return principal
            return ANONYMOUS
        token = self._required_token(authorization)
        if await self.authorize_ingest_async(token):
            return Principal("ingest", None, token_key(token))
        raise errors.forbidden("token may not use the control API", None)


def build(
    tokens_file: Path | None,
    ingest_tokens_file: Path | None,
    kubernetes_auth: bool,
    ingest_service_accounts: Iterable[str] = (),
    on_failure: Callable[[str], None] = lambda reason: None,
    reviewer: KubernetesReviewer | None = None,
) -> Authorizer:
    readers = TokenTable.load(tokens_file) if tokens_file is not None else None
    ingesters = TokenTable.load(ingest_tokens_file) if ingest_tokens_file is not None else None
    if kubernetes_auth and reviewer is None:
        reviewer = KubernetesReviewer.from_environment()
    return Authorizer(
        readers,
        ingesters,
        reviewer if kubernetes_auth else None,
        ingest_service_accounts,
        on_failure,
    )
