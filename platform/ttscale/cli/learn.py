"""`ttscale learn dataset | train`: search, then learn — a verifier trained on the stored trees.

- `dataset SWEEP_OR_CELL... --out DIR`: every step prefix of the stored search trees of those
  sweeps or cells, labelled from the candidates below it (`learning.labels`), split by problem
  (`learning.split`), as `DIR/steps.parquet` with its card (`card.json`, `card.md`) and the
  test split's problems (`test_problems.jsonl`). With `--rollouts N`, prefixes with too few
  candidates below first get N continuations each (`learning.rollout_plan`), sampled, charged and
  stored as roll-out cells (`ttscale.rollouts`); what engines print then goes to the log file.
- `train DIR --out MODEL_DIR`: a reward head on the bundled model's hidden states
  (`learning.training`); prints the verifier name to use: `learned:MODEL_DIR@FINGERPRINT`.
  What transformers and torch print goes to the command's log file (`terminal.to_log_file`).

docs/learning.md walks through the loop: sweep, dataset, train, a second sweep with the
learned verifier beside the others, the report.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ttscale import results, store
from ttscale.cli import terminal
from ttscale.cli.context import DB_HELP, console, settings_for
from ttscale.errors import SpecError
from ttscale.learning.dataset import build_card, rollout_card, short_of, write_dataset
from ttscale.learning.labels import step_rows
from ttscale.learning.rollout_plan import RolloutOptions, rollout_options
from ttscale.learning.split import DEFAULT_FRACTIONS, check_fractions
from ttscale.learning.training import DEFAULT_LAYERS, TrainOptions, check_training, train_verifier
from ttscale.reward_model import FINGERPRINT_FILES
from ttscale.rollouts import SpentRollouts, plan_rollouts_for, spend
from ttscale.settings import Settings
from ttscale.store import Engine

STAGES = {"features": "encoding solutions", "heads": "fitting heads"}


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SpecError(f"{option}: must be comma-separated numbers, got {text!r}") from None


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SpecError(f"{option}: must be comma-separated integers, got {text!r}") from None


def register(app: typer.Typer) -> None:
    learn_app = typer.Typer(help="Search, then learn: step labels from stored trees, a verifier trained on them.", no_args_is_help=True)
    app.add_typer(learn_app, name="learn")

    @learn_app.command("dataset")
    def dataset(
        targets: list[str] = typer.Argument(..., metavar="SWEEP_OR_CELL...", help="Sweeps (id, id prefix or name) or cell ids"),
        out: Path = typer.Option(..., "--out", help="Dataset folder to write (steps.parquet, card.json, card.md, test_problems.jsonl, stepwise.parquet)"),
        split: str = typer.Option(",".join(f"{f:g}" for f in DEFAULT_FRACTIONS), help="Train,validation,test shares of problems"),
        salt: str = typer.Option("", help="Salt of the problem-id hash that splits (another salt, another split)"),
        rollouts: int = typer.Option(0, "--rollouts", help="N continuations sampled (on the cells' own policy, stored as roll-out cells) from each step prefix with fewer than --min-candidates graded candidates below; 0: none"),
        min_candidates: Optional[int] = typer.Option(None, "--min-candidates", help="K: prefixes with fewer graded candidates below get roll-outs (default 1: only those with none)"),
        max_rollout_prefixes: Optional[int] = typer.Option(None, "--max-rollout-prefixes", help="At most this many prefixes get roll-outs, fewest candidates first (default: all)"),
        db: Optional[str] = typer.Option(None, help=DB_HELP),
    ) -> None:
        """Build a step-level dataset from stored search trees (labels from the candidates below each step)."""
        fractions = _floats(split, "--split")
        if error := check_fractions(fractions):
            raise SpecError(f"--split: {error}")
        options = rollout_options(rollouts, min_candidates, max_rollout_prefixes)
        settings = settings_for(db)
        out_console = console()
        with store.opened(settings.database_url, create_embedded=False) as engine:
            with store.connect(engine) as conn:
                cells = pl.concat([results.resolve_cells(conn, t) for t in targets]).unique("cell_id", keep="first", maintain_order=True)
                stored = results.read_results(conn, cells)
                generating = stored.generating["cell_id"].to_list()
                candidates = store.read_candidates(conn, generating, with_text=True)
                nodes = store.read_nodes_of_cells(conn, generating)
                code = store.code_version()
            if candidates.is_empty():
                raise SpecError(f"SWEEP_OR_CELL: {', '.join(targets)} has no stored candidates yet")
            source_cells = stored.generating
            spent = None
            if options.n:
                spent = _spend_rollouts(engine, settings, options, stored, candidates, nodes, out_console)
                # A roll-out cell may be a target too (named by id): each row once.
                stored = replace(
                    stored, cells=pl.concat([stored.cells, spent.cells]).unique("cell_id", maintain_order=True),
                    runs=pl.concat([stored.runs, spent.runs]).unique(["cell_id", "problem_id"], maintain_order=True),
                    problems=pl.concat([stored.problems, spent.problems]).unique(["dataset", "problem_id"], maintain_order=True),
                )  # fmt: skip
                candidates = pl.concat([candidates, spent.candidates]).unique(["cell_id", "problem_id", "idx"], maintain_order=True)
        rows = step_rows(stored.cells, stored.runs, stored.problems, candidates, nodes, fractions=fractions, split_salt=salt)
        rollout_entry = None
        if spent is not None:
            rollout_entry = rollout_card(
                options, n_eligible=spent.n_eligible, planned=spent.planned, stored=spent.cells, candidates=spent.candidates,
                n_sampled=[r.n_written for r in spent.reports], rows=rows,
            )  # fmt: skip
        card = build_card(
            rows, source_cells, targets=targets, n_nodes=nodes.height,
            n_candidates=candidates.filter(pl.col("correct").is_not_null() & pl.col("cell_id").is_in(source_cells["cell_id"].to_list())).height,
            fractions=fractions, salt=salt, created_at=f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC", code_version=code,
            rollouts=rollout_entry,
        )  # fmt: skip
        paths = write_dataset(out, rows, card, stored.problems)
        b = card["balance"]
        out_console.print(escape(
            f"{card['n_rows']:,} step prefixes from {len(card['cells'])} cells ({card['n_nodes']:,} nodes, "
            f"{card['n_candidates']:,} candidates); {b['labelled']:,} labelled, hard positive share {b['hard_positive_share']}, "
            f"soft mean {b['soft_mean']}; split "
            + ", ".join(f"{name} {s['problems'] if s['labelled'] else 0} problems / {s['labelled']} steps" for name, s in card["splits"].items())
        ))  # fmt: skip
        if rollout_entry is not None:
            out_console.print(escape(
                f"roll-outs: {rollout_entry['n_prefixes_labelled']:,} of {rollout_entry['n_prefixes']:,} prefixes continued now labelled; "
                f"{rollout_entry['n_rows_with_rollouts']:,} rows with roll-outs, {rollout_entry['n_rows_labelled_by_rollouts_alone']:,} "
                f"labelled by them alone; {card['n_nodes_unlabelled']:,} nodes left with no candidate below"
            ))  # fmt: skip
        for path in paths:
            out_console.print(escape(str(path)), soft_wrap=True)

    @learn_app.command("train")
    def train(
        data: Path = typer.Argument(..., metavar="DIR", help="A dataset folder written by `ttscale learn dataset`"),
        out: Path = typer.Option(..., "--out", help="Model folder to write (config.json, head.npz, metrics.json, card.json)"),
        backbone: str = typer.Option("smollm2-135m", help="Model whose hidden states the head reads"),
        layers: str = typer.Option(",".join(map(str, DEFAULT_LAYERS)), help="Decoder layers (1-based) to try; the chosen one is where scoring stops"),
        head: Optional[list[str]] = typer.Option(None, "--head", help="Head kinds to try (repeatable): logistic, mlp (default both)"),
        l2: str = typer.Option("0.01,0.1,1", help="Weight decay values to try"),
        label: str = typer.Option("soft", help="Target: soft (share of right candidates below) | hard (any right)"),
        epochs: int = typer.Option(400, help="Full-batch Adam epochs per head"),
        hidden: int = typer.Option(64, help="Hidden units of the MLP head"),
        seed: int = typer.Option(0, help="Seed of the heads' initialisation"),
        force: bool = typer.Option(False, "--force", help="Replace a model already in MODEL_DIR"),
    ) -> None:
        """Train a step scorer (a reward head on frozen hidden states) and record its validation metrics."""
        options = TrainOptions(
            backbone=backbone, layers=_ints(layers, "--layers"), heads=tuple(head or ("logistic", "mlp")),  # type: ignore[arg-type]
            l2=_floats(l2, "--l2"), label=label, hidden=hidden, epochs=epochs, seed=seed,  # type: ignore[arg-type]
        )  # fmt: skip
        if not force and any((out / name).exists() for name in FINGERPRINT_FILES):
            raise SpecError(f"--out: {str(out)!r} already holds a model; pass --force to replace it (specs pinning it then fail)")
        settings = settings_for()
        check_training(data, settings, options)  # a bad input is one line, and no log file
        terminal.to_log_file(settings.home, "learn-train")  # before transformers loads
        with TrainingProgress() as progress:
            report = train_verifier(data, out, settings, options, progress)
        m = report.metrics
        out_console = console()
        chosen = m["chosen"]
        out_console.print(escape(f"chosen: layer {chosen['layer']}, {chosen['head']} head, l2 {chosen['l2']}, {chosen['label']} labels"))
        for split_name in ("train", "validation", "test"):
            if split_name in m:
                s = m[split_name]
                out_console.print(escape(
                    f"{split_name}: {s['n_steps']} steps of {s['n_problems']} problems, step AUC {s['step_auc']} "
                    f"(within problems {s['step_auc_within']}), final-step AUC {s['final_auc']} (within problems "
                    f"{s['final_auc_within']}), Brier {s['brier']}, ECE {s['ece']}"
                ))  # fmt: skip
        out_console.print(escape(f"verifier: {report.verifier_name}"), soft_wrap=True)  # one line, whatever its length: scripts read it


def _spend_rollouts(engine: Engine, settings: Settings, options: RolloutOptions, stored: results.StoredResults,
                    candidates: pl.DataFrame, nodes: pl.DataFrame, out: Console) -> SpentRollouts:  # fmt: skip
    """`rollouts.plan_rollouts_for` then `rollouts.spend`, saying on the terminal what is spent."""
    plan = plan_rollouts_for(stored, candidates, nodes, options, settings)
    if plan.planned:
        terminal.to_log_file(settings.home, "learn-dataset")  # before an engine loads
    out.print(escape(
        f"roll-outs: {options.n} continuations of {plan.n_chosen:,} of {plan.n_eligible:,} step prefixes "
        f"{short_of(options.min_candidates)}, in {len(plan.planned)} cells"
    ))  # fmt: skip
    spent = spend(engine, plan, settings)
    for p, report in zip(spent.planned, spent.reports, strict=True):
        row = spent.cells.filter(pl.col("cell_id") == p.cell.cell_id).row(0, named=True)
        how = f"sampled {report.n_written} problems" if report.n_written else "already stored"
        out.print(escape(
            f"roll-out cell {p.cell.cell_id} ({p.n_prefixes:,} prefixes × {options.n} from {', '.join(p.source_cell_ids)}): {how}; "
            f"{row['n_generated_tokens'] or 0:,} generated tokens, {row['policy_flops']:.3g} policy FLOPs"
        ), soft_wrap=True)  # fmt: skip
    return spent


class TrainingProgress:
    """A rich progress bar on the terminal's stderr when it is a terminal (stages: encoding,
    fitting; ttscale's warnings print above it); else a plain line there per stage at most
    every `LOG_EVERY_S` seconds and at its end (`encoding solutions 120/480`)."""

    LOG_EVERY_S = 30.0

    def __init__(self, clock=time.monotonic) -> None:  # noqa: ANN001
        self.clock = clock

    def __enter__(self):  # noqa: ANN204
        self.bar = None
        self.live = None
        self.out = console(stderr=True)
        self.tasks: dict[str, int] = {}
        self.logged: dict[str, float] = {}
        if terminal.stderr().isatty():  # the terminal's, even once descriptor 2 is the log file
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.out, transient=False,
            )  # fmt: skip
            self.bar.__enter__()
            self.live = terminal.live_display(self.out)
            self.live.__enter__()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            now = self.clock()
            if done == total or now - self.logged.setdefault(stage, now) >= self.LOG_EVERY_S:
                self.logged[stage] = now
                self.out.print(escape(f"{STAGES.get(stage, stage)} {done}/{total}"))
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(STAGES.get(stage, stage), total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        if self.live is not None:
            self.live.__exit__(*exc)
        if self.bar is not None:
            self.bar.__exit__(*exc)
