"""Prefect flows of ttscale (the only place Prefect is imported). Thin: tasks call
`ttscale.execution` and `ttscale.tracking`; `flows.team` holds the Prefect API calls of team
mode (deploying, submitting, waiting, cancelling, work pools and slot limits).

- `flows.sweep.sweep_flow`: register a sweep, plan its shards, run them (tasks here, or
  deployment runs of the shard flow on a work pool), settle statuses, track in MLflow.
- `flows.shard.shard_flow`: one shard, the unit a worker runs.
"""
