"""Prefect flows of ttscale (the only place Prefect is imported). Thin: each task calls one
function of `ttscale.runner`, `ttscale.sweep_state` or `ttscale.tracking`; `flows.team` holds
the Prefect API calls of team mode (deploying, submitting, waiting, cancelling, work pools and
slot limits).

- `flows.sweep.run_sweep`: run a planned sweep's shards (tasks here, or deployment runs of the
  shard flow on a work pool), settle statuses, track in MLflow.
- `flows.shard.shard_flow`: one shard, the unit a worker runs.
"""
