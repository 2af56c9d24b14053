"""`ttscale run`: one cell (model × verifier × strategy × budget × dataset × seed), here and now.

A one-cell sweep: the options become a sweep spec of one cell, which runs exactly as `ttscale
sweep run` runs a sweep (`sweep.run_here`) — planned against the store (problems already stored
for this cell are skipped: rerunning resumes), shard by shard with the sweep's retries and
progress, tracked in MLflow. Then the cell's accuracy, tokens, FLOPs and wall time are printed
and its stored results written as JSON lines under $TTSCALE_HOME/runs/.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
import yaml
from pydantic import ValidationError

from ttscale import store
from ttscale.cli.context import DB_HELP, console, settings_for
from ttscale.cli.sweep import run_here
from ttscale.errors import SpecError
from ttscale.planning import prepare_cell
from ttscale.reward_model import pinned_name
from ttscale.spec import CellSpec, SweepSpec, embed_policy, format_validation_error
from ttscale.strategies import STRATEGIES, strategy_names
from ttscale.strategy_params import PARAMS_BY_NAME

STRATEGY_OPTIONS = ("beam_width", "n_iterations", "lookahead", "n_rounds")
"""Strategy parameters with their own option; any other goes through `--param KEY=VALUE`."""


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        model: str = typer.Option("smollm2-135m", help="Policy model: registered name, HF id or local path"),
        dataset: str = typer.Option("arith", help="Dataset: math500, gsm8k, arith, or a .jsonl file path"),
        limit: Optional[int] = typer.Option(None, help="Use only the first LIMIT problems"),
        levels: Optional[str] = typer.Option(None, help="Comma-separated difficulty levels to keep, e.g. 1,2"),
        strategy: str = typer.Option("best_of_n", help="A strategy (`ttscale ls strategies`)"),
        n: int = typer.Option(4, help="N: samples (Best-of-N), generations per step (beam search, DVTS) or particles (particle filtering)"),
        beam_width: Optional[int] = typer.Option(None, help="M of beam_search/dvts (default 4)"),
        n_iterations: Optional[int] = typer.Option(None, help="Max search depth in steps of beam_search/dvts/particle_filtering (default 40)"),
        lookahead: Optional[int] = typer.Option(None, help="Lookahead steps k of beam_search/dvts (default 0)"),
        n_rounds: Optional[int] = typer.Option(None, help="Revision rounds R of self_refine (default 2)"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="Any other strategy parameter, KEY=VALUE (repeatable)"),
        verifier: Optional[str] = typer.Option(None, help="A verifier (`ttscale ls verifiers`); `learned:PATH` is stored as `learned:ABSOLUTE_PATH@FINGERPRINT`"),
        aggregation: str = typer.Option("last", help="Step-score aggregation: last | min | prod"),
        seed: int = typer.Option(0, help="Engine seed (sampling on CPU is not repeatable even so)"),
        fidelity: str = typer.Option("ttscale", help="Search semantics: ttscale | search-and-learn (docs/fidelity.md)"),
        temperature: float = typer.Option(0.8, help="Sampling temperature T"),
        top_p: float = typer.Option(1.0, help="Nucleus sampling mass"),
        max_tokens: int = typer.Option(512, help="Token limit of a whole solution"),
        step_max_tokens: int = typer.Option(128, help="Token limit of one step (beam_search/dvts)"),
        shard_size: int = typer.Option(50, help="Problems per stored shard (the unit of resume)"),
        db: Optional[str] = typer.Option(None, help=DB_HELP),
        out: Optional[Path] = typer.Option(None, help="JSONL result file (default: $TTSCALE_HOME/runs/CELL.jsonl)"),
    ) -> None:
        """Run one cell and store every candidate, node and verdict."""
        settings = settings_for(db)
        given = {"beam_width": beam_width, "n_iterations": n_iterations, "lookahead": lookahead, "n_rounds": n_rounds}
        cell = build_cell(
            model=model, dataset=dataset, limit=limit, levels=levels, strategy=strategy, n=n,
            strategy_options={k: v for k, v in given.items() if v is not None}, params=param or [],
            verifier=verifier, aggregation=aggregation, seed=seed, fidelity=fidelity,
            sampling=dict(temperature=temperature, top_p=top_p, max_tokens=max_tokens, step_max_tokens=step_max_tokens),
        )  # fmt: skip
        prepare_cell(cell, settings)  # errors name the options, before anything is stored
        spec = one_cell_sweep(cell, shard_size)
        text = "# ttscale run: a one-cell sweep\n" + yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
        run_here(spec, text, settings, command="run")
        path = out or settings.home / "runs" / f"{cell.cell_id}.jsonl"
        with store.opened(settings.database_url) as engine:
            n_rows = write_results(engine, cell.cell_id, path)
        console().print(f"results: {path} ({n_rows} problems)")


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_cell(*, model, dataset, limit, levels, strategy, n, strategy_options, params, verifier, aggregation, seed, sampling, fidelity="ttscale") -> CellSpec:  # noqa: ANN001
    """A CellSpec from CLI options; errors name the option (`--n: ...`)."""
    if strategy not in PARAMS_BY_NAME:
        strategy_names()
        raise SpecError(STRATEGIES.unknown_message(strategy, "--strategy"))
    if not PARAMS_BY_NAME[strategy].selects_answers:
        raise SpecError(f"--strategy: {strategy} cells are made by `ttscale learn dataset --rollouts`, not run alone")
    fields = PARAMS_BY_NAME[strategy].model_fields
    for key in strategy_options:
        if key not in fields:
            raise SpecError(f"{_option(key)}: not a parameter of {strategy}")
    chosen: dict = {"name": strategy, **strategy_options}
    for item in params:
        key, eq, value = item.partition("=")
        if not eq or key not in fields or key == "name":
            allowed = ", ".join(k for k in fields if k != "name") or "none"
            raise SpecError(f"--param: {item!r} is not KEY=VALUE with KEY a parameter of {strategy} ({allowed})")
        chosen[key] = yaml.safe_load(value)
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
    if verifier is not None and verifier.startswith("learned:"):
        # The cell's spec names the model folder absolutely and pins its contents: the cell id
        # then changes when the model does, so a retrained model never resumes an old cell.
        verifier = pinned_name(verifier.removeprefix("learned:"))
    chosen = embed_policy(chosen, "--param policy")  # a policy file's path becomes its content, as in a sweep spec
    data = dict(model=model, verifier=verifier, aggregation=aggregation, strategy=chosen, n=n, dataset=ds, seed=seed,
                sampling=sampling, fidelity=fidelity)  # fmt: skip
    try:
        return CellSpec.model_validate(data)
    except ValidationError as err:
        first = format_validation_error(err).splitlines()[0]
        field, _, rest = first.partition(": ")
        # Name the option as typed on the command line: `strategy.beam_width` → `--beam-width`,
        # `strategy.policy` → `--param policy` (a parameter without an option of its own).
        key = field.split(".")[-1]
        if field.startswith("strategy.") and key in fields and key not in STRATEGY_OPTIONS:
            option = f"--param {key}"
        else:
            option = _option(key) if field and " " not in field else None
        raise SpecError(f"{option}: {rest}" if option else first) from None


def one_cell_sweep(cell: CellSpec, shard_size: int) -> SweepSpec:
    """The sweep whose only cell is `cell` (the same cell id: a cell run alone or in a sweep is one piece of work)."""
    spec = SweepSpec(
        name=f"run {cell.cell_id}", models=[cell.model], verifiers=[cell.verifier], aggregation=cell.aggregation,
        strategies=[cell.strategy], budgets=[cell.n], datasets=[cell.dataset], seeds=[cell.seed],
        sampling=cell.sampling, shard_size=shard_size, fidelity=cell.fidelity,
    )  # fmt: skip
    assert [c.cell_id for c in spec.cells()] == [cell.cell_id], "a one-cell sweep must expand to exactly its cell"
    return spec


def write_results(engine, cell_id: str, path: Path) -> int:  # noqa: ANN001
    """One JSON line per stored problem of the cell (tree, candidates, verdicts); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with store.connect(engine) as conn, path.open("w", encoding="utf-8") as f:
        verdicts = store.read_verdicts(conn, [cell_id])
        problem_ids = sorted(store.done_problem_ids(conn, cell_id))
        gold = dict(zip(*store.read_problems_of_cells(conn, [cell_id]).select("problem_id", "answer"), strict=True))
        for problem_id in problem_ids:
            result = store.read_problem_result(conn, cell_id, problem_id)
            mine = verdicts.filter(verdicts["problem_id"] == problem_id).drop("cell_id", "problem_id").to_dicts()
            row = {
                "cell_id": cell_id,
                "problem_id": problem_id,
                "gold": gold.get(problem_id),
                "candidates": [asdict(c) for c in result.candidates],
                "nodes": [asdict(nd) for nd in result.nodes],
                "verdicts": mine,
                "n_prompt_tokens": result.n_prompt_tokens,
                "n_generated_tokens": result.n_generated_tokens,
                "n_verifier_tokens": result.n_verifier_tokens,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(problem_ids)
