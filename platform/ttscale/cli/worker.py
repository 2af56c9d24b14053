"""`ttscale worker --pool POOL [--gpus 0,1]`: Prefect process workers for team mode.

One `prefect worker start` per GPU slot, each with `CUDA_VISIBLE_DEVICES` set to its GPU and
`--limit 1` (one shard at a time); each slot also gets a global concurrency limit of 1 named
`ttscale-gpu-<host>-<gpu>` that the shard task holds while it runs, so two workers pointed at
one GPU by mistake still take turns. Without `--gpus`, one worker with the same limit of one
flow run and no slot limit (CPU hosts). SIGTERM/SIGINT stop every worker (SIGTERM, then SIGINT
to any still up after 10 s — a Prefect process worker may ignore one SIGTERM — then SIGKILL),
then the command exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

import typer

from ttscale.cli.context import configure_prefect
from ttscale.errors import OrchestrationError, SpecError
from ttscale.settings import Settings


def parse_gpus(gpus: str | None) -> list[str]:
    """`0,1` → ["0", "1"]; SpecError naming `--gpus` for anything but distinct integers."""
    if gpus is None:
        return []
    slots = [g.strip() for g in gpus.split(",")]
    if not slots or any(not g.isdigit() for g in slots):
        raise SpecError(f"--gpus: must be comma-separated GPU indices like 0,1, got {gpus!r}")
    if len(set(slots)) != len(slots):
        raise SpecError(f"--gpus: duplicate GPU indices in {gpus!r}")
    return slots


def _stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGINT to whichever worker is still up, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        for p in procs:
            if p.poll() is None:
                p.send_signal(sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        pool: str = typer.Option("gpu", "--pool", help="Prefect process work pool to serve (created if missing)"),
        gpus: Optional[str] = typer.Option(None, "--gpus", help="GPU indices, one worker each, e.g. 0,1 (default: one worker)"),
        name: Optional[str] = typer.Option(None, "--name", help="Worker name prefix (default: ttscale-<host>)"),
    ) -> None:
        """Start Prefect process workers for POOL: one per GPU slot, one shard at a time each."""
        slots = parse_gpus(gpus)
        settings = Settings.from_env()
        if not settings.prefect_api_url:
            raise SpecError("PREFECT_API_URL: not set; workers serve a Prefect server's work pool")
        configure_prefect(settings)
        from flows import team  # Prefect is imported only by the commands that orchestrate

        try:
            team.check_api()
            team.ensure_pool(pool)
        except RuntimeError as err:
            raise OrchestrationError(str(err)) from None
        host = socket.gethostname()
        prefix = name or f"ttscale-{host}"
        procs: list[subprocess.Popen] = []
        for slot in slots or [None]:
            env = dict(os.environ)
            worker_name = prefix if slot is None else f"{prefix}-gpu{slot}"
            if slot is not None:
                slot_name = f"{host}-{slot}"
                team.ensure_slot_limit(slot_name)
                env[team.SLOT_ENV] = slot_name
                env["CUDA_VISIBLE_DEVICES"] = slot
            cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
                   "--limit", "1", "--name", worker_name]  # fmt: skip
            procs.append(subprocess.Popen(cmd, env=env))
            typer.echo(f"worker {worker_name} started (pid {procs[-1].pid}) on pool {pool!r}" + (f", CUDA_VISIBLE_DEVICES={slot}" if slot is not None else ""), err=True)

        stopping = False

        def _on_signal(signum, _frame) -> None:  # noqa: ANN001
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not stopping and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            _stop(procs)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        codes = [p.returncode for p in procs]
        if not stopping and any(codes):
            raise typer.Exit(1)
