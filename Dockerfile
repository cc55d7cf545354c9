# syntax=docker/dockerfile:1
# One image for every command: serve (default), consume, migrate, replay. The Shopee
# sandbox (service/sandbox, local runs and tests only) is left out by .dockerignore.
#   docker build -t ghcr.io/your-org/marketplace-webhook-gateway:0.1.0 .
#   docker run --rm ghcr.io/your-org/marketplace-webhook-gateway:0.1.0 consume
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: install the project and its dependencies into a self-contained venv -----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Every dependency ships manylinux wheels for CPython 3.11 (amd64 and arm64), so no
# compiler is needed. pyproject.toml names README.md as the package readme.
COPY pyproject.toml README.md ./
COPY service ./service
COPY transforms ./transforms
# A regular (not editable) install: the runtime stage needs only /opt/venv.
# Bytecode is compiled here, because the runtime root filesystem is read-only.
RUN pip install . \
    && python -m compileall -q /opt/venv/lib

# --- runtime: the same base image (the venv's python symlink points into it) ----------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
# `python -m` puts the working directory first on sys.path: use an empty, root-owned one
# (never a writable directory such as /tmp, which could shadow the package).
WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# 8080: the ingest service (serve); 9100: the consumer's /metrics and /healthz.
EXPOSE 8080 9100
ENTRYPOINT ["python", "-m", "service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
