"""`ttscale serve --policy policy.json`: an OpenAI-compatible endpoint answering with the policy.

The policy file names the model and verifier it was learned for; both are loaded once (the
engine starts: tens of seconds on a CPU) after the port is bound, so a port in use fails at
once. Then `POST /v1/chat/completions` and `GET /v1/models` are served on `--host`/`--port`
(loopback by default) until Ctrl-C or SIGTERM. What a request may ask and what the response
holds: `ttscale.serving.protocol` and the README's "Serving the compute-optimal policy".
With `--store`, every request is stored with its candidates and search tree like a cell's
problem (`ttscale.serving.answering`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from ttscale import store
from ttscale.cli import terminal
from ttscale.cli.context import DB_HELP, console, settings_for
from ttscale.errors import SpecError
from ttscale.policy import load_policy
from ttscale.redaction import redact_url
from ttscale.runner import release_policies
from ttscale.spec import SamplingParams, format_validation_error


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        policy: Path = typer.Option(..., "--policy", help="Compute-optimal policy file (`ttscale report SWEEP --policy FILE`): the model, verifier and choices served"),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes the endpoint to the network)"),
        port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port to serve on"),
        n: Optional[int] = typer.Option(None, "--n", help="Budget N of a request that names none: one of the policy's budgets (default: its smallest)"),
        probes: int = typer.Option(4, "--probes", min=1, max=256, help="k of adaptive: probe samples per problem that predict its difficulty bin"),
        max_n: int = typer.Option(64, "--max-n", min=1, max=4096, help="Largest budget a request may ask of a fixed strategy"),
        max_batch: int = typer.Option(32, "--max-batch", min=1, max=4096, help="Most requests answered by one batched search"),
        temperature: float = typer.Option(0.8, help="Sampling temperature T (a request may change it)"),
        top_p: float = typer.Option(1.0, help="Nucleus sampling mass (a request may change it)"),
        max_tokens: int = typer.Option(512, help="Token limit of a whole solution (a request may lower it)"),
        step_max_tokens: int = typer.Option(128, help="Token limit of one step (beam_search, dvts, particle_filtering)"),
        seed: int = typer.Option(0, help="Engine seed (sampling on CPU is not repeatable even so)"),
        store_requests: bool = typer.Option(False, "--store", help="Store every request, its candidates and search tree (a cell of dataset `served`)"),
        db: Optional[str] = typer.Option(None, help=DB_HELP),
    ) -> None:
        """Serve the compute-optimal policy behind an OpenAI-compatible chat-completions endpoint."""
        from ttscale.serving.answering import ServeOptions, check_options, load_answerer
        from ttscale.serving.server import bind, run_server

        settings = settings_for(db)
        policy_file = load_policy(policy, what="--policy")
        try:
            sampling = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, step_max_tokens=step_max_tokens)
        except ValidationError as err:
            field, _, rest = format_validation_error(err).splitlines()[0].partition(": ")
            raise SpecError(f"--{field.replace('_', '-')}: {rest}") from None
        options = ServeOptions(n=n or min(policy_file.budgets), probes=probes, sampling=sampling, max_n=max_n, seed=seed)
        check_options(policy_file, options)
        sock = bind(host, port)
        try:
            terminal.to_log_file(settings.home, "serve")
            with store.opened(settings.database_url) if store_requests else contextlib.nullcontext() as engine:
                answerer = load_answerer(policy_file, options, settings, engine)
                where = f"; storing requests in {redact_url(settings.database_url)}" if engine is not None else ""
                console(stderr=True).print(
                    f"ttscale serve: {policy_file.model} with policy {policy_file.policy_id} (budgets {list(policy_file.budgets)}, "
                    f"default n={options.n}) on http://{host}:{port}/v1{where}; Ctrl-C stops",
                    markup=False, soft_wrap=True,  # one line, however narrow the terminal: scripts grep the URL
                )
                run_server(answerer, sock, max_batch=max_batch)
        finally:
            sock.close()
            release_policies()
        console(stderr=True).print("ttscale serve: stopped", markup=False)

