"""`ttscale run`: one cell (model × verifier × strategy × budget × dataset × seed), here and now.

Results go to the store (resuming: problems already stored for this cell are skipped) and to
a JSONL file; a table of accuracy, tokens, FLOPs and wall time is printed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        model: str = typer.Option("smollm2-135m", help="Policy model: registered name, HF id or local path"),
        dataset: str = typer.Option("arith", help="Dataset: math500, gsm8k, arith, or a .jsonl file path"),
        limit: Optional[int] = typer.Option(None, help="Use only the first LIMIT problems"),
        levels: Optional[str] = typer.Option(None, help="Comma-separated difficulty levels to keep, e.g. 1,2"),
        strategy: str = typer.Option("best_of_n", help="majority | best_of_n | beam_search | dvts | self_refine"),
        n: int = typer.Option(4, help="N: samples (Best-of-N) or generations per step (beam search, DVTS)"),
        beam_width: int = typer.Option(4, help="M for beam_search/dvts"),
        n_iterations: int = typer.Option(40, help="Max search depth in steps (beam_search/dvts)"),
        lookahead: int = typer.Option(0, help="Lookahead steps k (beam_search/dvts)"),
        n_rounds: int = typer.Option(2, help="Revision rounds R (self_refine)"),
        verifier: Optional[str] = typer.Option(None, help="arithmetic | self | rlhflow_prm | qwen_prm | scripted"),
        aggregation: str = typer.Option("last", help="Step-score aggregation: last | min | prod"),
        seed: int = typer.Option(0, help="Engine seed (sampling on CPU is not repeatable even so)"),
        temperature: float = typer.Option(0.8, help="Sampling temperature T"),
        top_p: float = typer.Option(1.0, help="Nucleus sampling mass"),
        max_tokens: int = typer.Option(512, help="Token limit of a whole solution"),
        step_max_tokens: int = typer.Option(128, help="Token limit of one step (beam_search/dvts)"),
        shard_size: int = typer.Option(50, help="Problems per stored shard (the unit of resume)"),
        db: Optional[str] = typer.Option(None, help="Store URL (default: $TTSCALE_DATABASE_URL or the SQLite file)"),
        out: Optional[Path] = typer.Option(None, help="JSONL result file (default: $TTSCALE_HOME/runs/CELL.jsonl)"),
    ) -> None:
        """Run one cell and store every candidate, node and verdict."""
        from ttscale.settings import Settings

        settings = Settings.from_env()
        if db:
            settings = _with_db(settings, db)
        cell = build_cell(
            model=model,
            dataset=dataset,
            limit=limit,
            levels=levels,
            strategy=strategy,
            n=n,
            beam_width=beam_width,
            n_iterations=n_iterations,
            lookahead=lookahead,
            n_rounds=n_rounds,
            verifier=verifier,
            aggregation=aggregation,
            seed=seed,
            sampling=dict(temperature=temperature, top_p=top_p, max_tokens=max_tokens, step_max_tokens=step_max_tokens),
        )
        run_cell_here(cell, settings, shard_size=shard_size, out=out)


def _with_db(settings, url: str):
    from dataclasses import replace

    return replace(settings, database_url=url)


def build_cell(*, model, dataset, limit, levels, strategy, n, beam_width, n_iterations, lookahead, n_rounds, verifier, aggregation, seed, sampling):
    """A CellSpec from CLI options; errors name the option (`--n: ...`)."""
    from pydantic import ValidationError

    from ttscale.errors import SpecError
    from ttscale.spec import STRATEGY_NAMES, CellSpec, format_validation_error
    from ttscale.strategies import STRATEGIES, strategy_names

    if strategy not in STRATEGY_NAMES:
        strategy_names()
        raise SpecError(STRATEGIES.unknown_message(strategy, "--strategy"))
    params: dict = {"name": strategy}
    if strategy in ("beam_search", "dvts"):
        params |= {"beam_width": beam_width, "n_iterations": n_iterations, "lookahead": lookahead}
    if strategy == "self_refine":
        params["n_rounds"] = n_rounds
    if dataset.endswith(".jsonl"):
        ds: dict = {"name": "jsonl", "path": str(Path(dataset).absolute())}
    else:
        ds = {"name": dataset}
    if limit is not None:
        ds["limit"] = limit
    if levels:
        try:
            ds["levels"] = [int(x) for x in levels.split(",")]
        except ValueError:
            raise SpecError(f"--levels: must be comma-separated integers, got {levels!r}") from None
    data = dict(
        model=model, verifier=verifier, aggregation=aggregation, strategy=params, n=n, dataset=ds, seed=seed, sampling=sampling
    )
    try:
        return CellSpec.model_validate(data)
    except ValidationError as err:
        first = format_validation_error(err).splitlines()[0]
        field, _, rest = first.partition(": ")
        # Name the option as typed on the command line: `strategy.beam_width` → `--beam-width`.
        option = "--" + field.split(".")[-1].replace("_", "-") if field and " " not in field else None
        raise SpecError(f"{option}: {rest}" if option else first) from None


def run_cell_here(cell, settings, *, shard_size: int = 50, out: Path | None = None) -> dict:
    """Prepare, resume from the store, run shard by shard, store, print the summary table."""
    from ttscale.runner import prepare_cell, run_shard

    prepared = prepare_cell(cell, settings)  # every name and the dataset checked: nothing loaded yet
    from ttscale import store
    from ttscale.execution import load_cell_runtime, release_policies

    engine = store.make_engine(settings.database_url)
    store.check_reachable_and_migrated(engine)
    with store.transaction(engine) as session:
        done = store.done_problem_ids(session, cell.cell_id)
    todo = [p for p in prepared.problems if p.id not in done]
    console = _console()
    if not todo:
        console.print(f"cell {cell.cell_id}: all {len(prepared.problems)} problems already stored; nothing to run")
    start = time.perf_counter()
    outcomes = []
    if todo:
        runtime = load_cell_runtime(cell, settings, prepared)
        try:
            with store.transaction(engine) as session:
                store.register_cell(
                    session,
                    cell,
                    policy_params=runtime.policy.n_params,
                    verifier_params=runtime.verifier.n_params if runtime.verifier else 0,
                )
                store.set_cell_status(session, cell.cell_id, "running")
            progress = _progress(console)
            for i in range(0, len(todo), shard_size):
                shard = todo[i : i + shard_size]
                outcome = run_shard(cell, shard, runtime.policy, runtime.verifier, runtime.prompts, progress=progress)
                with store.transaction(engine) as session:
                    store.write_shard(session, outcome)
                outcomes.append(outcome)
                console.print(f"stored {min(i + shard_size, len(todo))}/{len(todo)} problems")
            with store.transaction(engine) as session:
                store.set_cell_status(session, cell.cell_id, "done")
        finally:
            # The vLLM engine lives in a child process the interpreter would wait for at exit.
            release_policies()
    elapsed = time.perf_counter() - start
    with engine.connect() as conn:
        summary = summarize(conn, cell, elapsed)
    out = out or settings.home / "runs" / f"{cell.cell_id}.jsonl"
    write_results(out, cell, summary, outcomes)
    print_summary(console, summary)
    console.print(f"results: {out}")
    return summary


def summarize(conn, cell, elapsed_s: float) -> dict:
    """Accuracy per selection method at N and compute totals, read back from the store."""
    from ttscale import store

    verdicts = store.read_verdicts(conn, [cell.cell_id])
    runs = store.read_problem_runs(conn, [cell.cell_id])
    at_n = verdicts.filter(verdicts["n"] == cell.n)
    acc = {m: float(at_n.filter(at_n["method"] == m)["correct"].mean() or 0.0) for m in ("naive", "weighted", "majority", "pass")}
    return {
        "cell_id": cell.cell_id,
        "model": cell.model,
        "strategy": cell.strategy.name,
        "verifier": cell.verifier,
        "n": cell.n,
        "dataset": cell.dataset.label,
        "n_problems": runs.height,
        "accuracy": acc,
        "n_prompt_tokens": int(runs["n_prompt_tokens"].sum()),
        "n_generated_tokens": int(runs["n_generated_tokens"].sum()),
        "n_verifier_tokens": int(runs["n_verifier_tokens"].sum()),
        "policy_flops": float(runs["policy_flops"].sum()),
        "verifier_flops": float(runs["verifier_flops"].sum()),
        "elapsed_s": round(elapsed_s, 2),
        "spec": json.loads(cell.canonical_json()),
    }


def write_results(path: Path, cell, summary: dict, outcomes) -> None:
    """One JSON line per problem run now (tree, candidates, verdicts); the summary beside it."""
    from dataclasses import asdict

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for outcome in outcomes:
            verdicts = {}
            for v in outcome.verdicts:
                verdicts.setdefault(v.problem_id, []).append(asdict(v))
            for problem, result in zip(outcome.problems, outcome.results, strict=True):
                row = {
                    "cell_id": cell.cell_id,
                    "problem_id": problem.id,
                    "gold": problem.answer,
                    "candidates": [asdict(c) for c in result.candidates],
                    "nodes": [asdict(nd) for nd in result.nodes],
                    "verdicts": verdicts.get(problem.id, []),
                    "n_prompt_tokens": result.n_prompt_tokens,
                    "n_generated_tokens": result.n_generated_tokens,
                    "n_verifier_tokens": result.n_verifier_tokens,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    path.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def print_summary(console, s: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{s['model']} · {s['dataset']} · {s['n_problems']} problems")
    for col in ("strategy", "verifier", "n", "naive", "weighted", "majority", "pass@n", "gen tokens", "FLOPs", "wall s"):
        table.add_column(col, justify="right" if col not in ("strategy", "verifier") else "left")
    a = s["accuracy"]
    table.add_row(
        s["strategy"],
        s["verifier"] or "-",
        str(s["n"]),
        f"{a['naive']:.3f}",
        f"{a['weighted']:.3f}",
        f"{a['majority']:.3f}",
        f"{a['pass']:.3f}",
        f"{s['n_generated_tokens']:,}",
        f"{s['policy_flops'] + s['verifier_flops']:.3g}",
        f"{s['elapsed_s']:.1f}",
    )
    console.print(table)


def _console():
    from rich.console import Console

    return Console(file=sys.stdout, width=140)


def _progress(console):
    """Status lines on a terminal; silence otherwise (logs carry the shard start/end lines)."""
    if not sys.stderr.isatty():
        return None

    def report(message: str) -> None:
        console.print(f"[dim]{message}[/dim]")

    return report
