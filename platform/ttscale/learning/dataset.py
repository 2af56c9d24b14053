"""The step dataset on disk: `steps.parquet` (`labels.STEP_SCHEMA`), its card (`card.json`,
`card.md`), the held-out problems (`test_problems.jsonl`, a `jsonl` dataset a second sweep
can run on: `--dataset DIR/test_problems.jsonl`) and the same labels in TRL's stepwise-supervision
shape (`stepwise.parquet`: prompt, completions, labels, split — what `PRMTrainer` reads on a
GPU worker, docs/learning.md).

The card says where the data came from and what it holds: the cells read (id, model,
strategy, verifier, n, dataset), how many stored nodes and candidates, how many nodes got a
label, the label balance, rows and problems per split, and the roll-outs spent (`rollouts`: N,
the prefixes continued, the roll-out cells with their tokens and FLOPs, the rows they label).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ttscale.errors import DataError
from ttscale.learning.labels import STEP_SCHEMA, covering_solutions
from ttscale.learning.rollout_plan import RolloutCell, RolloutOptions
from ttscale.learning.split import SPLITS

STEPS_FILE, CARD_JSON, CARD_MD, TEST_PROBLEMS = "steps.parquet", "card.json", "card.md", "test_problems.jsonl"
STEPWISE_FILE = "stepwise.parquet"
CARD_KIND = "ttscale step dataset"
LABEL_NOTE = (
    "Math-Shepherd estimates (Wang et al. 2024): over the graded candidates below a step prefix (its subtree's "
    "candidates, and every candidate sharing the exact prefix), hard = any is right, soft = share right"
)
ROLLOUT_NOTE = (
    "; with roll-outs: {n} continuations sampled from each of {p} step prefixes {short}, graded and pooled like any "
    "candidate (labelling the prefix, its ancestors and the continuation's own steps); a row's n_rollout_candidates "
    "counts them, and the {alone} rows where it equals n_candidates are labelled by roll-outs alone"
)
CELL_TOTALS = ("n_prompt_tokens", "n_generated_tokens", "policy_flops", "policy_flops_computed")
"""What a roll-out cell's card entry reports of its stored totals (`store.read_cells`)."""


def _balance(rows: pl.DataFrame) -> dict:
    labelled = rows.filter(pl.col("n_candidates") > 0)
    if labelled.is_empty():
        return {"rows": rows.height, "labelled": 0, "hard_positive_share": None, "soft_mean": None}
    return {
        "rows": rows.height,
        "labelled": labelled.height,
        "hard_positive_share": round(float(labelled["label_hard"].mean()), 4),
        "soft_mean": round(float(labelled["label_soft"].mean()), 4),
        "final_rows": int(labelled["is_final"].sum()),
        "problems": labelled.select("dataset", "problem_id").unique().height,
    }


def short_of(min_candidates: int) -> str:
    """Which prefixes roll-outs are for, in words."""
    return "with no graded candidate below" if min_candidates == 1 else f"with fewer than {min_candidates} graded candidates below"


def rollout_card(
    options: RolloutOptions,
    *,
    n_eligible: int,
    planned: Sequence[RolloutCell],
    stored: pl.DataFrame,
    candidates: pl.DataFrame,
    n_sampled: Sequence[int],
    rows: pl.DataFrame,
) -> dict:
    """The card's `rollouts` entry. `stored`: the roll-out cells' rows (`store.read_cells`),
    `candidates` theirs; `n_sampled`: per planned cell, the problems this run sampled (0: all
    were stored already)."""
    totals = {r["cell_id"]: r for r in stored.iter_rows(named=True)}
    graded = candidates.filter(pl.col("correct").is_not_null()).group_by("cell_id").len()
    n_graded = dict(zip(graded["cell_id"].to_list(), graded["len"].to_list(), strict=True))
    cells = [
        {
            "cell_id": p.cell.cell_id, "model": p.cell.model, "dataset": p.cell.dataset.label, "source_cell_ids": list(p.source_cell_ids),
            "n_prefixes": p.n_prefixes, "n_candidates": n_graded.get(p.cell.cell_id, 0), "n_problems_sampled_now": int(n),
            **{k: totals[p.cell.cell_id][k] for k in CELL_TOTALS},
        }
        for p, n in zip(planned, n_sampled, strict=True)
    ]  # fmt: skip
    with_rollouts = rows.filter(pl.col("n_rollout_candidates") > 0)
    continued = {(p.cell.model, pid, steps) for p in planned for pid, found in p.cell.strategy.prefixes.items() for steps in found}
    labelled = {(m, pid, tuple(steps)) for m, pid, steps in with_rollouts.select("model", "problem_id", "steps").iter_rows()}
    return {
        "n": options.n,
        "min_candidates": options.min_candidates,
        "max_prefixes": options.max_prefixes,
        "n_prefixes_eligible": n_eligible,
        "n_prefixes": sum(p.n_prefixes for p in planned),
        "n_prefixes_labelled": len(continued & labelled),
        "cells": cells,
        **{k: sum(c[k] or 0 for c in cells) for k in ("n_candidates", *CELL_TOTALS)},
        "n_rows_with_rollouts": with_rollouts.height,
        "n_rows_labelled_by_rollouts_alone": with_rollouts.filter(pl.col("n_rollout_candidates") == pl.col("n_candidates")).height,
    }


def build_card(
    rows: pl.DataFrame,
    cells: pl.DataFrame,
    *,
    targets: Sequence[str],
    n_nodes: int,
    n_candidates: int,
    fractions: Sequence[float],
    salt: str,
    created_at: str,
    code_version: str,
    rollouts: dict | None = None,
) -> dict:
    """The dataset card: provenance and counts (plain JSON types). `cells`: the generating cells
    read (roll-out cells are in `rollouts`, as `rollout_card` gives it; None: none spent)."""
    labelled = rows.filter(pl.col("n_candidates") > 0)
    soft = labelled["label_soft"].to_list()
    histogram = [0] * 10
    for share in soft:
        histogram[min(int(share * 10), 9)] += 1
    texts = rows.select("problem", "split").unique().group_by("problem").agg(pl.len().alias("k"))
    cell_cols = ["cell_id", "model", "strategy", "verifier", "n", "dataset", "seed", "n_problems_done"]
    return {
        "kind": CARD_KIND,
        "created_at": created_at,
        "code_version": code_version,
        "targets": list(targets),
        "cells": cells.select([c for c in cell_cols if c in cells.columns]).to_dicts(),
        "label": LABEL_NOTE + (ROLLOUT_NOTE.format(
            n=rollouts["n"], p=rollouts["n_prefixes"], short=short_of(rollouts["min_candidates"]), alone=rollouts["n_rows_labelled_by_rollouts_alone"],
        ) if rollouts and rollouts["cells"] else ""),  # fmt: skip
        "rollouts": rollouts,
        "split": {"by": "sha256 of salt + problem id", "fractions": list(fractions), "salt": salt},
        "n_nodes": n_nodes,
        "n_nodes_labelled": int(labelled["n_nodes"].sum()) if labelled.height else 0,
        "n_nodes_unlabelled": int(rows.filter(pl.col("n_candidates") == 0)["n_nodes"].sum()),
        "n_candidates": n_candidates,
        "n_rows": rows.height,
        "balance": _balance(rows),
        "soft_label_histogram": {"bins": "[0, 0.1), ..., [0.9, 1]", "counts": histogram},
        "splits": {name: _balance(rows.filter(pl.col("split") == name)) for name in SPLITS},
        "problem_texts_in_several_splits": int(texts.filter(pl.col("k") > 1).height),
        "steps_per_row": {"max": int(rows["n_steps"].max() or 0), "mean": round(float(rows["n_steps"].mean() or 0.0), 2)},
    }


def card_markdown(card: dict) -> str:
    b = card["balance"]
    lines = [
        f"# Step dataset ({card['created_at']})",
        "",
        f"- from: {', '.join(card['targets'])} — {len(card['cells'])} generating cells, code {card['code_version']}",
        f"- stored nodes: {card['n_nodes']:,} ({card['n_nodes_labelled']:,} labelled, {card['n_nodes_unlabelled']:,} "
        f"with no candidate below); graded candidates: {card['n_candidates']:,}",
        f"- step prefixes: {card['n_rows']:,} ({b['labelled']:,} labelled); label: {card['label']}",
        f"- label balance: hard positive share {b['hard_positive_share']}, soft mean {b['soft_mean']}; soft histogram "
        f"{card['soft_label_histogram']['counts']}",
        f"- split: {card['split']['by']}, fractions {card['split']['fractions']}; problem texts in several splits: "
        f"{card['problem_texts_in_several_splits']}",
        "",
        "| split | problems | rows | labelled | hard positive share | soft mean |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in card["splits"].items():
        lines.append(f"| {name} | {s.get('problems', 0)} | {s['rows']} | {s['labelled']} | {s['hard_positive_share']} | {s['soft_mean']} |")
    lines += ["", "| cell | model | strategy | verifier | n | dataset | problems |", "|---|---|---|---|---|---|---|"]
    for c in card["cells"]:
        lines.append(f"| {c['cell_id']} | {c['model']} | {c['strategy']} | {c.get('verifier')} | {c['n']} | {c['dataset']} | {c.get('n_problems_done')} |")
    r = card.get("rollouts")
    if r:
        cap = f", at most {r['max_prefixes']:,}" if r["max_prefixes"] is not None else ""
        lines += [
            "",
            f"Roll-outs: N={r['n']} continuations of {r['n_prefixes']:,} of the {r['n_prefixes_eligible']:,} step prefixes "
            f"{short_of(r['min_candidates'])}{cap} ({r['n_prefixes_labelled']:,} now labelled); {r['n_candidates']:,} graded candidates, {r['n_generated_tokens']:,} "
            f"generated tokens, {r['policy_flops']:.3g} policy FLOPs charged ({r['policy_flops_computed']:.3g} computed); rows with "
            f"roll-outs {r['n_rows_with_rollouts']:,}, labelled by roll-outs alone {r['n_rows_labelled_by_rollouts_alone']:,}.",
            "",
            "| roll-out cell | from cells | prefixes | candidates | generated tokens | policy FLOPs | problems sampled by this run |",
            "|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for c in r["cells"]:
            lines.append(
                f"| {c['cell_id']} | {', '.join(c['source_cell_ids'])} | {c['n_prefixes']} | {c['n_candidates']} | {c['n_generated_tokens']} "
                f"| {c['policy_flops']:.3g} | {c['n_problems_sampled_now']} |"
            )  # fmt: skip
    return "\n".join(lines) + "\n"


def stepwise_supervision(rows: pl.DataFrame) -> pl.DataFrame:
    """TRL's stepwise-supervision rows (`prompt`, `completions`, `labels`, plus `split`): each
    longest labelled solution once, with the hard label of each of its prefixes."""
    labelled = rows.filter(pl.col("n_candidates") > 0)
    hard = {(p, tuple(s)): h for p, s, h in labelled.select("problem", "steps", "label_hard").iter_rows()}
    split = {p: s for p, s in labelled.select("problem", "split").iter_rows()}
    solutions, _ = covering_solutions(labelled)
    out = [
        {"prompt": p, "completions": list(steps), "labels": [hard[(p, steps[:k])] for k in range(1, len(steps) + 1)], "split": split[p]}
        for p, steps in solutions
    ]
    schema = {"prompt": pl.String, "completions": pl.List(pl.String), "labels": pl.List(pl.Boolean), "split": pl.String}
    return pl.DataFrame(out, schema=schema)


def write_dataset(out: Path, rows: pl.DataFrame, card: dict, problems: pl.DataFrame) -> list[Path]:
    """Write the dataset folder; `problems` (as `store.read_problems`) gives the held-out problems' answers."""
    out.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(out / STEPS_FILE)
    stepwise_supervision(rows).write_parquet(out / STEPWISE_FILE)
    (out / CARD_JSON).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / CARD_MD).write_text(card_markdown(card), encoding="utf-8")
    test_ids = set(rows.filter(pl.col("split") == "test").select("dataset", "problem_id").unique().iter_rows())
    with (out / TEST_PROBLEMS).open("w", encoding="utf-8") as f:
        for p in problems.sort("dataset", "problem_id").iter_rows(named=True):
            if (p["dataset"], p["problem_id"]) in test_ids:
                row = {"id": p["problem_id"], "problem": p["text"], "answer": p["answer"], "level": p["level"], "subject": p["subject"]}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [out / STEPS_FILE, out / CARD_JSON, out / CARD_MD, out / TEST_PROBLEMS, out / STEPWISE_FILE]


def card_sha256(folder: Path) -> str:
    return hashlib.sha256((folder / CARD_JSON).read_bytes()).hexdigest()


def read_dataset(folder: Path) -> tuple[pl.DataFrame, dict]:
    """The rows and card of a dataset folder; DataError naming what is missing or malformed."""
    steps, card_path = folder / STEPS_FILE, folder / CARD_JSON
    if not steps.is_file() or not card_path.is_file():
        raise DataError(f"DIR: {str(folder)!r} is not a step dataset (needs {STEPS_FILE} and {CARD_JSON}; `ttscale learn dataset` writes them)")
    try:
        rows = pl.read_parquet(steps)
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, pl.exceptions.PolarsError) as err:
        raise DataError(f"DIR: cannot read {folder}: {type(err).__name__}: {err}"[:300]) from None
    if "n_rollout_candidates" not in rows.columns:  # written before roll-outs existed: none spent
        rows = rows.with_columns(pl.lit(0, pl.Int64).alias("n_rollout_candidates"))
    missing = [k for k in STEP_SCHEMA if k not in rows.columns]
    if missing or card.get("kind") != CARD_KIND:
        raise DataError(f"DIR: {folder} is not a ttscale step dataset (missing columns {missing})")
    return rows, card
