# syntax=docker/dockerfile:1
# ttscale CLI + dashboard image: no GPU, no vLLM. docker/compose.yaml also runs the schema
# migration (`ttscale db upgrade`) and the MLflow server (mlflow==3.17.2 and psycopg 3 come
# with ttscale's pinned dependencies; the official MLflow image has no PostgreSQL driver) from it.
#
# Build from the repository root (the context; .dockerignore keeps .git, .venv, .env out):
#   docker build -f docker/app.Dockerfile -t ttscale-app:0.1.0 .
#
# Pinned by tag; for bit-for-bit rebuilds add the digest after the first pull
# (python:3.11.13-slim-bookworm@sha256:...).
FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TTSCALE_HOME=/var/lib/ttscale \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1

# An unprivileged user whose home is TTSCALE_HOME (Prefect home, run files, caches), and the
# MLflow server's artifact directory (a named volume there starts with this owner).
RUN groupadd --system --gid 10001 ttscale \
 && useradd --system --uid 10001 --gid ttscale --home-dir /var/lib/ttscale --create-home \
      --shell /usr/sbin/nologin ttscale \
 && install -d -o ttscale -g ttscale /var/lib/mlflow/artifacts

# The package finds migrations/ and dashboard/ beside platform/ (ttscale.store.versioning.repo_root),
# so the checkout is copied as a tree and installed editable: a plain `pip install .` would put
# the package in site-packages, away from them. No `cpu` extra: this image runs no model.
WORKDIR /opt/ttscale
COPY pyproject.toml README.md alembic.ini ./
COPY platform/ platform/
COPY flows/ flows/
COPY migrations/ migrations/
COPY dashboard/ dashboard/
COPY examples/ examples/
# No .git in the image: record the commit for the code version stored with every sweep.
ARG GIT_SHA=""
RUN if [ -n "$GIT_SHA" ]; then echo "$GIT_SHA" > platform/ttscale/BUILD_COMMIT; fi
RUN pip install -e . \
 && ttscale --help > /dev/null \
 && python -c "import flows.team, mlflow, psycopg, streamlit"

USER 10001:10001
EXPOSE 8501
# Inside a container the dashboard must listen on every interface; docker/compose.yaml publishes
# it on 127.0.0.1 of the host only (BIND_ADDRESS).
CMD ["ttscale", "dashboard", "--host", "0.0.0.0"]
