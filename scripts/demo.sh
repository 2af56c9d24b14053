#!/usr/bin/env bash
# The demo on embedded defaults: the bundled SmolLM2-135M on CPU vLLM, SQLite store, local
# MLflow and Prefect's temporary server, all under $TTSCALE_HOME. Runs the demo sweep (cells
# already stored are skipped, so a second `make demo` goes straight to the results), prints the
# compute-optimal frontier, writes its chart, and serves the dashboard until Ctrl-C.
# DEMO_NO_DASHBOARD=1 stops after the report (used by the smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
export TTSCALE_HOME=${TTSCALE_HOME:-$PWD/.ttscale}
T=.venv/bin/ttscale
# The SQLite store creates and migrates itself on first use.
$T sweep run examples/demo.yaml
# Difficulty bins are the dataset's three rungs (`--bins level`); the findings come first.
$T report demo --bins level --table findings --table accuracy --table frontier --table verifiers \
  --plot "$TTSCALE_HOME/demo-frontier.png"
echo "frontier chart: $TTSCALE_HOME/demo-frontier.png"
if [ "${DEMO_NO_DASHBOARD:-0}" = "1" ]; then exit 0; fi
echo "dashboard: http://127.0.0.1:${DASHBOARD_PORT:-8501} (Ctrl-C stops it)"
exec $T dashboard --port "${DASHBOARD_PORT:-8501}"
