"""`ttscale import FILE --format search-and-learn --model NAME --strategy NAME`: published
completions (JSONL or parquet in the reference layout) stored as one cell, graded by ttscale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ttscale import store
from ttscale.cli.context import DB_HELP, console, print_table, settings_for
from ttscale.errors import SpecError
from ttscale.importers import IMPORT_FORMATS
from ttscale.importers.search_and_learn import convert, read_completions
from ttscale.analysis.agreement import agreement, disagreements
from ttscale.analysis.frames import verdicts_frame
from ttscale.runner import accuracy_at


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_(
        file: Path = typer.Argument(..., help="Completions file: .jsonl or .parquet"),
        fmt: str = typer.Option(..., "--format", help="Source layout: search-and-learn"),
        model: str = typer.Option(..., help="Policy model that generated the completions"),
        strategy: str = typer.Option(..., help="Strategy that produced them: best_of_n | dvts | beam_search | majority | self_refine"),
        aggregation: str = typer.Option("last", help="Step-score aggregation: last | min | prod"),
        dataset: Optional[str] = typer.Option(None, help="Dataset label (default: the file name without suffix)"),
        beam_width: int = typer.Option(4, help="M of beam_search/dvts (recorded in the cell spec)"),
        db: Optional[str] = typer.Option(None, help=DB_HELP),
    ) -> None:
        """Import a completions file as one cell: answers extracted and graded, step scores aggregated."""
        if fmt not in IMPORT_FORMATS:
            raise SpecError(f"--format: unknown {fmt!r}; allowed: {', '.join(IMPORT_FORMATS)}")
        with store.opened(settings_for(db).database_url) as engine:  # before the (slow) grading: a bad store fails first
            import_file(engine, file, model=model, strategy=strategy, dataset=dataset or file.stem,
                        aggregation=aggregation, beam_width=beam_width)  # fmt: skip


def import_file(engine, file: Path, *, model: str, strategy: str, dataset: str, aggregation: str, beam_width: int) -> None:  # noqa: ANN001
    """Grade a completions file, store it as one cell and print what was stored."""
    rows = read_completions(file)
    cell, outcome = convert(
        rows,
        model=model,
        strategy=strategy,
        dataset=dataset,
        aggregation=aggregation,
        beam_width=beam_width,
        source=str(file),
    )
    with store.transaction(engine) as conn:
        store.register_cell(conn, cell, n_problems=len(outcome.problems))
        written = store.write_shard(conn, outcome)
        store.set_cell_status(conn, cell.cell_id, "done")
    n = cell.n
    accuracy = accuracy_at(outcome.verdicts, n)
    typer.echo(
        f"imported cell {cell.cell_id}: {written.n_written_problems} problems written, "
        f"{written.n_skipped_problems} already stored; {sum(len(r.candidates) for r in outcome.results)} candidates, "
        f"n={n}, dataset={cell.dataset.label}"
    )
    typer.echo("accuracy@n=" + str(n) + ": " + ", ".join(f"{m} {a:.3f}" for m, a in accuracy.items()))
    published = verdicts_frame(cell.cell_id, outcome.verdicts)
    if published.filter(published["source"] == "published").height:
        print_agreement(agreement(published), disagreements(published))


def print_agreement(summary, differ, limit: int = 10) -> None:  # noqa: ANN001 - polars frames
    """The published predictions against ttscale's own selection, per method and budget, and the
    first problems where they disagree."""
    out = console()
    headers = ["method", "n", "problems", "published", "ttscale", "differ"]
    rows = [
        [r["method"], r["n"], r["n_problems"], f"{r['published_accuracy']:.3f}", f"{r['ttscale_accuracy']:.3f}", r["n_differ"]]
        for r in summary.iter_rows(named=True)
    ]
    print_table(out, "published predictions (graded by ttscale) vs ttscale's selection", headers, rows, right=headers[1:])
    for r in differ.head(limit).iter_rows(named=True):
        out.print(escape(
            f"differs: {r['problem_id']} {r['method']}@{r['n']}: published {r['published_answer']!r} "
            f"({'right' if r['published_correct'] else 'wrong'}), ttscale {r['ttscale_answer']!r} "
            f"({'right' if r['ttscale_correct'] else 'wrong'})"
        ))
    if differ.height > limit:
        out.print(f"... and {differ.height - limit} more (`ttscale report CELL --table agreement`)")
