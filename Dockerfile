# WorkEngine: the gRPC server (`workengine serve`) in a slim Python 3.11 image.
#
#   docker build -t workengine .
#   docker run --init -p 50051:50051 -v workengine-data:/var/lib/workengine \
#       -e WORKENGINE_ADMIN_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" workengine
#
# The container listens on 0.0.0.0, so `serve` refuses to start without authentication: give
# an admin token (WORKENGINE_ADMIN_TOKEN, or WORKENGINE_ADMIN_TOKEN_FILE=/run/secrets/... for a
# mounted secret), or -e WORKENGINE_INSECURE=1 on a network you trust. The health check needs
# no token (health stays open) and reads the same WORKENGINE_* variables as the server, so it
# speaks TLS when WORKENGINE_TLS_CERT is set: configure TLS with variables, not flags.
# Without WORKENGINE_DATABASE_URL the server starts an embedded PostgreSQL in
# WORKENGINE_DATA_DIR (on the volume above); pass -e WORKENGINE_DATABASE_URL=postgresql://...
# to use an external server instead. `--init` reaps the embedded PostgreSQL's processes
# when they exit (they are re-parented to PID 1). Needs BuildKit (the default since Docker 23)
# for the RUN --mount below.

# ---- builder: wheels for the project and every dependency ------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# Only what the build backend needs: the metadata, the README it names, and the package
# (the generated workengine/v1 modules are committed under src/, so protos/ is not needed).
COPY pyproject.toml README.md ./
COPY src/ ./src/
# With the otel extra: tracing is then turned on by OTEL_* variables alone (docs/operations.md).
RUN pip wheel --wheel-dir /wheels '.[otel]'

# ---- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HOME=/var/lib/workengine \
    XDG_RUNTIME_DIR=/run/workengine \
    WORKENGINE_HOST=0.0.0.0 \
    WORKENGINE_PORT=50051 \
    WORKENGINE_DATA_DIR=/var/lib/workengine/pgdata

# A fixed non-root user: the embedded PostgreSQL refuses to run as root. Its data directory
# is a subdirectory of the (volume-friendly) home, so initdb always finds it absent or empty;
# XDG_RUNTIME_DIR holds the embedded server's lock file.
RUN groupadd --system --gid 10001 workengine \
    && useradd --system --uid 10001 --gid workengine --home-dir /var/lib/workengine \
        --no-create-home --shell /usr/sbin/nologin workengine \
    && install -d -o workengine -g workengine -m 0750 /var/lib/workengine \
    && install -d -o workengine -g workengine -m 0700 /run/workengine

# Install from the builder's wheels only (no index); the wheels themselves stay out of the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "$(ls /wheels/workengine-*.whl)[otel]"

USER 10001:10001
WORKDIR /var/lib/workengine

# gRPC, and the HTTP side port (/metrics, /healthz, /readyz).
EXPOSE 50051 8081

# SERVING for workengine.v1.WorkEngineService from the gRPC health service on 127.0.0.1, over
# TLS (trusting the server's own certificate) when WORKENGINE_TLS_CERT is set, presenting
# WORKENGINE_HEALTHCHECK_CERT/KEY (else the server's pair) when client certificates are
# required (docs/operations.md). The first start runs initdb and the migrations, hence the
# start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["workengine", "healthcheck"]

ENTRYPOINT ["workengine"]
CMD ["serve"]
