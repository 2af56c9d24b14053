#!/usr/bin/env bash
# The demo on embedded defaults: bundled SmolLM2-135M on CPU vLLM, SQLite store under
# $TTSCALE_HOME. Later steps (sweep, report, dashboard) are added as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
export TTSCALE_HOME=${TTSCALE_HOME:-$PWD/.ttscale}
.venv/bin/ttscale db upgrade
.venv/bin/ttscale run --model smollm2-135m --dataset arith --limit 10 --strategy beam_search --n 4 \
  --beam-width 2 --n-iterations 6 --verifier arithmetic --seed 0
