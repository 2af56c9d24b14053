"""Shared helpers of the benchmarks: the machine, git sha and versions a figure was measured on,
load sampling (the benchmark machine is shared), the search benchmarks' options and their
batched-vs-one-at-a-time comparison, and appending a section to benchmarks/RESULTS.md.

Imported as `_common` by scripts run as `python benchmarks/<name>.py` (the script's folder is
on sys.path); it imports nothing heavy at module level, because vLLM's engine process
re-imports the main script's imports when it spawns.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


# ---- where and with what a figure was measured ------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def cpu_flags() -> set[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def cpu_flag_summary() -> str:
    """The CPU features that decide vLLM-CPU's kernels and dtype (AVX2, AVX-512, its BF16 and VNNI, AMX)."""
    flags = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
    return ", ".join(f for f in wanted if f in flags) or "none of AVX2/AVX-512/AMX"


def gpu_description() -> str | None:
    """'N × name (memory)' of the visible CUDA GPUs, or None (no torch CUDA device)."""
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            props = torch.cuda.get_device_properties(0)
            return f"{torch.cuda.device_count()} × {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return None


def machine_line(*, gpu: bool = True) -> str:
    """CPU, cores, SIMD, RAM and OS; with `gpu`, also the CUDA GPUs (this imports torch)."""
    simd = "AVX-512" if "avx512f" in cpu_flags() else "AVX2" if "avx2" in cpu_flags() else "no AVX2"
    line = f"{cpu_model()}, {os.cpu_count()} cores ({simd}), {ram_gib():.0f} GiB RAM, {platform.system()} {platform.release()}"
    return f"{line}; GPU: {gpu_description() or 'none'}" if gpu else line


def git_sha() -> str:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    sha = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return sha + (" (working tree with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def versions(*packages: str) -> str:
    out = []
    for p in packages:
        try:
            out.append(f"{p} {version(p)}")
        except PackageNotFoundError:
            with contextlib.suppress(Exception):
                module = __import__(p)
                out.append(f"{p} {module.__version__}")
                continue
            out.append(f"{p} (not installed)")
    return ", ".join(out)


def server_version(url: str) -> str:
    """The database server's version (`SHOW server_version`, PostgreSQL)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SHOW server_version").scalar_one()
    finally:
        engine.dispose()


def versions_line(*packages: str, store_url: str | None = None) -> str:
    """`python X, <package> <version>, ...` and, given a store URL, its database: `psycopg V,
    PostgreSQL S` (the server asked) or `SQLite S`."""
    parts = [f"python {platform.python_version()}", *([versions(*packages)] if packages else [])]
    if store_url is not None and store_url.startswith("postgresql"):
        parts += [versions("psycopg"), f"PostgreSQL {server_version(store_url)}"]
    elif store_url is not None:
        import sqlite3

        parts.append(f"SQLite {sqlite3.sqlite_version}")
    return ", ".join(parts)


def vllm_versions() -> str:
    """vllm (the CPU build is the `vllm-cpu` distribution), torch, python."""
    import torch
    import vllm

    return f"vllm {vllm.__version__}, torch {torch.__version__}, python {platform.python_version()}"


def now_utc() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"


def run_ttscale(args: Sequence[str], env: dict[str, str], *, log: Path | None = None) -> tuple[float, str]:
    """Run the installed `ttscale` command as a user would; (wall seconds, stdout). With `log`,
    the command line and everything it printed are appended there. A failure stops the
    benchmark with the command, its exit code and the end of what it printed on stderr."""
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("ttscale")), *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if log is not None:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"$ ttscale {shlex.join(args)}\n{done.stdout}\n{done.stderr}\n")
    if done.returncode != 0:
        where = f"; log: {log}" if log is not None else ""
        raise SystemExit(f"ttscale {' '.join(args[:2])} failed ({done.returncode}){where}\n{done.stderr.strip()[-2000:]}")
    return wall, done.stdout


def command_line(script: str, argv: Sequence[str]) -> str:
    return " ".join([".venv/bin/python", f"benchmarks/{script}", *map(shlex.quote, argv)])


def provenance_lines(script: str, argv: Sequence[str], versions: str, total_s: float,
                     load_start: Sequence[float], load_end: Sequence[float] | None = None, load_note: str = "") -> list[str]:
    """The first lines of a search benchmark's RESULTS.md section: machine, git sha and versions,
    command and total time, load average at start and end (now, unless given)."""
    load_end = load_avg() if load_end is None else load_end
    return [
        f"- machine: {machine_line()}",
        f"- git: {git_sha()}; {versions}",
        f"- command: `{command_line(script, argv)}` (total {total_s / 60:.1f} min)",
        f"- load average (1/5/15 min) at start: {fmt_load(load_start)}; at end: {fmt_load(load_end)}{load_note}",
    ]


def store_machine_line(load: Sequence[float]) -> str:
    """The store benchmarks' machine: no GPU, and the load average when they started."""
    return f"{machine_line(gpu=False)}; load avg {fmt_load(load)} at start"


def store_provenance_lines(command: str, machine: str, server: str, packages: Sequence[str]) -> list[str]:
    """The first lines of a store benchmark's RESULTS.md section (store_write, concurrent_writers):
    command, machine, git sha and code version, Python and PostgreSQL, package versions."""
    from ttscale.store.provenance import code_version

    return [
        f"- command: `{command}`",
        f"- machine: {machine}",
        f"- git: {git_sha()} (code version {code_version()}); Python {platform.python_version()}; PostgreSQL {server}",
        f"- packages: {versions(*packages)}",
    ]


def store_benchmark_parser(doc: str, *, db_help: str) -> argparse.ArgumentParser:
    """The command line the store-reading benchmarks (analysis_scale, dashboard_load) share:
    --smoke, --db, --repeat, --no-record; the description is the first paragraph of `doc`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny size for CI")
    parser.add_argument("--db", help=db_help)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    return parser


def store_url(db: str | None, prefix: str) -> tuple[str, bool]:
    """`db`, or a new SQLite file in a temporary folder named `prefix...`; and whether it is the latter."""
    if db:
        return db, False
    import tempfile

    return f"sqlite:///{tempfile.mkdtemp(prefix=prefix)}/store.db", True


def print_comparison(rows: Sequence[str], figures: dict[str, tuple[Measured, Measured]], note: str = "") -> dict[str, float]:
    """Print the comparison table and each strategy's ratio (wall time of (b) over (a)); the ratios."""
    print("\n".join(COMPARISON_HEADER + list(rows)))
    ratios = {s: b.wall_s / a.wall_s for s, (a, b) in figures.items()}
    for s, r in ratios.items():
        print(f"{s}: one-at-a-time / batched wall time = {r:.2f}x{note}")
    return ratios


SHARED_LOAD_NOTE = (" — shared machine (other engineers' test runs); each row gives the 1-min load sampled every 5 s "
                    "while it ran")


def add_search_arguments(parser, *, n_iterations: int, max_tokens: int, step_max_tokens: int,
                         depth_note: str = "") -> None:
    """The search cell's options of the search benchmarks: N, M, depth, token limits, temperature, seed."""
    parser.add_argument("--n", type=int, default=8, help="N (default 8)")
    parser.add_argument("--beam-width", type=int, default=4, help="M (default 4)")
    parser.add_argument("--n-iterations", type=int, default=n_iterations, help=f"search depth (default {n_iterations}{depth_note})")
    parser.add_argument("--max-tokens", type=int, default=max_tokens)
    parser.add_argument("--step-max-tokens", type=int, default=step_max_tokens)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0, help="engine seed")


def bench_settings(kv_cache_gib: float | None = None):
    """Settings from the environment, with TTSCALE_HOME defaulting to the repository's
    .ttscale/ (where the converted bundled model is cached, as the tests do)."""
    from ttscale.settings import Settings

    env = dict(os.environ)
    env.setdefault("TTSCALE_HOME", str(ROOT / ".ttscale"))
    if kv_cache_gib is not None:
        env["TTSCALE_KV_CACHE_GIB"] = f"{kv_cache_gib:g}"
    return Settings.from_env(env)


# ---- load on a shared machine -----------------------------------------------------------------


def load_avg() -> tuple[float, float, float]:
    return os.getloadavg()


def fmt_load(load: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


class LoadSampler:
    """Samples the 1-minute load average every `interval_s` while a measured phase runs
    (other engineers' jobs share the machine): mean and max go next to each figure."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LoadSampler:
        self.samples = [load_avg()[0]]
        self._thread = threading.Thread(target=self._loop, name="load-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(load_avg()[0])

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.samples.append(load_avg()[0])

    @property
    def summary(self) -> str:
        if not self.samples:
            return "-"
        return f"{sum(self.samples) / len(self.samples):.1f} (max {max(self.samples):.1f})"


def tree_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and its live descendants (vLLM's
    engine core and worker): the work done, which other jobs on the machine do not inflate
    the way they inflate wall time (though the engine's spinning threads count too)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


# ---- counting what a policy is asked ----------------------------------------------------------


class _BusyClock:
    """Wall time during which at least one call is in flight (calls from several threads overlap
    under per-problem scheduling: their union, not their sum, is the time spent there)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._since = 0.0
        self.busy_s = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.busy_s += time.perf_counter() - self._since


class CountingPolicy:
    """Forwards to a policy and counts its `generate` calls, the prompts they carry and the wall
    time while any is in flight (thread-safe)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.n_generate_calls = 0
        self.n_prompts = 0
        self._clock = _BusyClock()
        self._lock = threading.Lock()

    @property
    def policy_s(self) -> float:
        return self._clock.busy_s

    def generate(self, request):
        with self._lock:
            self.n_generate_calls += 1
            self.n_prompts += len(request.prompts)
        self._clock.enter()
        try:
            return self.inner.generate(request)
        finally:
            self._clock.leave()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class CountingVerifier:
    """Sits under ttscale's `CachingVerifier` (run_shard wraps whatever verifier it is given)
    and counts what reaches the real verifier: calls, steps it scored, and the steps of the
    paths it was shown — what it would have scored had nothing been cached."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.n_params = inner.n_params
        self.n_calls = 0
        self.steps_scored = 0
        self.steps_in_paths = 0
        self._clock = _BusyClock()
        self._lock = threading.Lock()

    @property
    def verifier_s(self) -> float:
        return self._clock.busy_s

    def score(self, problems, solutions, start):
        with self._lock:
            self.n_calls += 1
            self.steps_scored += sum(len(s) - f for s, f in zip(solutions, start, strict=True))
            self.steps_in_paths += sum(len(s) for s in solutions)
        self._clock.enter()
        try:
            return self.inner.score(problems, solutions, start)
        finally:
            self._clock.leave()


# ---- batched across problems vs one problem at a time ----------------------------------------


@dataclass
class Measured:
    """One measured run of a strategy over a set of problems."""

    label: str
    wall_s: float
    n_problems: int
    generated_tokens: int
    prompt_tokens: int
    """Prompt tokens as ttscale charges them: once per request (not per sample)."""
    n_generate_calls: int
    n_prompts: int
    policy_s: float
    """Time inside `policy.generate` (the rest is search, verifier and grading in Python)."""
    accuracy: float
    """Naive-selection accuracy at N: a sanity check that both modes solve the same task."""
    load: str
    cpu_s: float = float("nan")
    """CPU seconds of this process and the engine processes during the run (`tree_cpu_s`)."""
    n_shards: int = 1
    engine: dict = field(default_factory=dict)
    """Differences of vLLM's engine counters over the run (empty unless the engine logs stats)."""
    verifier_calls: int = 0
    verifier_steps_scored: int = 0
    """Steps the verifier scored (after ttscale's score cache)."""
    verifier_steps_in_paths: int = 0
    """Steps of the paths it was shown: what it would have scored without the cache."""
    verifier_s: float = 0.0
    """Time inside the verifier (below ttscale's score cache)."""

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_s

    @property
    def problems_per_min(self) -> float:
        return 60.0 * self.n_problems / self.wall_s


def run_measured(label: str, cell, shards: Sequence[Sequence], runtime, *, before: Callable[[], None] | None = None,
                 scheduling: str = "barrier") -> Measured:
    """Run `runner.search_shard` on each shard in turn (one shard of all problems = ttscale's
    batched search; shards of one problem = the reference's one-at-a-time search) with one
    engine, timing the whole (nothing is stored). `scheduling`: `search_shard`'s."""
    from dataclasses import replace

    from ttscale.runner import search_shard

    if before is not None:
        before()
    counters = getattr(runtime.policy, "engine_counters", dict)
    engine0 = counters()
    policy = CountingPolicy(runtime.policy)
    verifier = CountingVerifier(runtime.verifier) if runtime.verifier is not None else None
    outcomes = []
    with LoadSampler() as load:
        cpu0 = tree_cpu_s()
        start = time.perf_counter()
        for shard in shards:
            outcomes.append(search_shard(cell, list(shard), replace(runtime, policy=policy, verifier=verifier),
                                         scheduling=scheduling))
        wall = time.perf_counter() - start
        cpu = tree_cpu_s() - cpu0
    engine1 = counters()
    engine = {k: engine1[k] - engine0.get(k, 0) for k in engine1}
    results = [r for o in outcomes for r in o.results]
    verdicts = [v for o in outcomes for v in o.verdicts if v.n == cell.n and v.method == "naive"]
    n_problems = sum(len(s) for s in shards)
    return Measured(
        label=label,
        wall_s=wall,
        n_problems=n_problems,
        generated_tokens=sum(r.n_generated_tokens for r in results),
        prompt_tokens=sum(r.n_prompt_tokens for r in results),
        n_generate_calls=policy.n_generate_calls,
        n_prompts=policy.n_prompts,
        policy_s=policy.policy_s,
        accuracy=sum(v.correct for v in verdicts) / max(1, n_problems),
        load=load.summary,
        cpu_s=cpu,
        n_shards=len(shards),
        engine=engine,
        verifier_calls=verifier.n_calls if verifier else 0,
        verifier_steps_scored=verifier.steps_scored if verifier else 0,
        verifier_steps_in_paths=verifier.steps_in_paths if verifier else 0,
        verifier_s=verifier.verifier_s if verifier else 0.0,
    )


def prompt_computed(m: Measured) -> float:
    """Prompt tokens the engine computed (given minus served from its prefix cache), from its counters."""
    return m.engine.get("vllm:prompt_tokens", 0) - m.engine.get("vllm:prompt_tokens_cached", 0)


def prompt_per_generated(m: Measured) -> float:
    """Prompt tokens the engine computed per token it generated (its own counters)."""
    return prompt_computed(m) / max(1.0, m.engine.get("vllm:generation_tokens", 0))


def compare_batched_vs_single(cell, problems: Sequence, runtime, *, single_first: bool = False,
                              before: Callable[[], None] | None = None, log: Callable[[str], None] = print,
                              ) -> tuple[Measured, Measured]:
    """(a) one shard of all `problems` vs (b) `len(problems)` shards of one problem, same
    engine, same cell (seed, sampling). `before` runs before each (e.g. reset the prefix cache)."""
    runs: dict[str, Measured] = {}
    order = ["single", "batched"] if single_first else ["batched", "single"]
    for mode in order:
        shards = [list(problems)] if mode == "batched" else [[p] for p in problems]
        label = "(a) batched across problems" if mode == "batched" else "(b) one problem at a time"
        log(f"  {cell.strategy.name} {label}: {len(problems)} problems ...")
        runs[mode] = run_measured(label, cell, shards, runtime, before=before)
        m = runs[mode]
        log(f"    {m.wall_s:.1f} s, {m.generated_tokens:,} tokens, {m.tokens_per_s:.0f} tok/s, "
            f"{m.n_generate_calls} generate calls, CPU {m.cpu_s:.0f} s, load {m.load}; {engine_summary(m.engine)}; "
            f"{verifier_summary(m)}")
    return runs["batched"], runs["single"]


def engine_summary(engine: dict) -> str:
    """Prompt tokens the engine was given (each sample counts its prompt), how many it served
    from the prefix cache, tokens generated and preemptions, from its counters."""
    if not engine:
        return "no engine counters"
    given = engine.get("vllm:prompt_tokens", 0)
    cached = engine.get("vllm:prompt_tokens_cached", 0)
    return (
        f"engine prompt tokens {given:,.0f} ({cached:,.0f} from the prefix cache, {given - cached:,.0f} computed), "
        f"generated {engine.get('vllm:generation_tokens', 0):,.0f}, preemptions {engine.get('vllm:num_preemptions', 0):.0f}"
    )


def verifier_summary(m: Measured) -> str:
    if not m.verifier_calls:
        return "no verifier"
    return (f"verifier calls {m.verifier_calls}, steps scored {m.verifier_steps_scored:,} of "
            f"{m.verifier_steps_in_paths:,} in the paths shown (the rest from ttscale's score cache)")


def comparison_rows(strategy: str, a: Measured, b: Measured) -> list[str]:
    """Markdown table rows (see COMPARISON_HEADER) for one strategy."""
    rows = []
    for m in (a, b):
        rows.append(
            f"| {strategy} | {m.label} | {m.wall_s:.1f} | {m.generated_tokens:,} | **{m.tokens_per_s:.0f}** | "
            f"{m.problems_per_min:.1f} | {m.n_generate_calls} | {m.policy_s:.1f} | {m.cpu_s:.0f} | {m.accuracy:.2f} | {m.load} |"
        )
    ratio = b.wall_s / a.wall_s
    per_token = a.tokens_per_s / b.tokens_per_s
    cpu_per_token = (b.cpu_s / b.generated_tokens) / (a.cpu_s / a.generated_tokens)
    rows.append(
        f"| {strategy} | **ratio b/a** | **{ratio:.2f}×** | | {per_token:.2f}× | | | | {cpu_per_token:.2f}× per token | | |"
    )
    return rows


COMPARISON_HEADER = [
    "| strategy | mode | wall s | generated tokens | tokens/s | problems/min | generate calls | in generate s "
    "| CPU s | accuracy (naive) | load 1-min mean (max) |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]


# ---- RESULTS.md -------------------------------------------------------------------------------


RESULTS_HEADER = "# Benchmark results\n\nEvery benchmark run appends a section here (see STYLE.md, Benchmarks).\n"


def record(text: str) -> None:
    """Append `text` (a markdown section, its `## ` heading first) to benchmarks/RESULTS.md,
    after a blank line; the file is created with its header when missing."""
    if not RESULTS.exists():
        RESULTS.write_text(RESULTS_HEADER, encoding="utf-8")
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write("\n" + text)
    print(f"recorded in {RESULTS}", file=sys.stderr)


def append_section(title: str, lines: Sequence[str]) -> None:
    """Append `## title — date` and `lines` (markdown) to benchmarks/RESULTS.md."""
    record(f"## {title} — {now_utc()}\n\n" + "\n".join(lines).rstrip() + "\n")
