# syntax=docker/dockerfile:1
# One image for every role: `tailrace server|operator|agent|logs|up`. The operator injects this same
# image as the collector sidecar, so it stays small and runs on a read-only root filesystem.
#
#   docker build -t tailrace:0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: wheels of Tailrace and its dependencies, installed into a self-contained venv -------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest, tests and secrets out).
COPY pyproject.toml README.md ./
COPY collector/ collector/
COPY operator/ operator/

# Bytecode is compiled here, hash-based so it stays valid whatever the copied mtimes, because at
# run time the root filesystem is read-only.
RUN python -m pip wheel --wheel-dir /wheels . \
 && python -m venv /opt/tailrace \
 && /opt/tailrace/bin/pip install --no-index --find-links /wheels tailrace \
 && /opt/tailrace/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/tailrace/lib \
 && /opt/tailrace/bin/tailrace --version

# --- final: the slim base, the venv, an unprivileged user -----------------------------------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="tailrace" \
      org.opencontainers.image.description="Kubernetes log collection for serverless functions and streaming pipelines" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tailrace/tailrace" \
      org.opencontainers.image.url="https://github.com/tailrace/tailrace" \
      org.opencontainers.image.documentation="https://github.com/tailrace/tailrace/blob/main/docs/install.md" \
      org.opencontainers.image.vendor="Tailrace" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# A named user (kopf and getpass look the uid up in /etc/passwd) with the distroless nonroot uid.
RUN groupadd --system --gid 65532 tailrace \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tailrace

COPY --from=builder /opt/tailrace /opt/tailrace

# Nothing is written outside mounted volumes: no bytecode, no pip cache, HOME and temp in /tmp
# (the chart mounts an emptyDir there).
ENV PATH=/opt/tailrace/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    TMPDIR=/tmp

WORKDIR /tmp
USER 65532:65532

# HTTP API, gRPC ingest, operator health/metrics, agent metrics, webhook (docs/interfaces.md).
EXPOSE 8080 7070 8081 9102 9443

ENTRYPOINT ["tailrace"]
CMD ["--help"]
