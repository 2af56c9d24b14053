"""Prefix caching: the same batched beam search with vLLM's prefix cache on, then off.

    .venv/bin/python benchmarks/prefix_cache.py [--problems 16] [--off-first] [--no-record]

Every step of a search re-sends the whole prompt: system prompt, few-shot examples, problem,
and the path so far, for each of the N samples. With prefix caching the engine computes the
shared part once and serves it from its KV cache; without, every sample of every step
recomputes it. This benchmark runs ttscale's batched beam search (N=8, M=4, the demo's
n_iterations=4, step_max_tokens=64, max_tokens=192, `arithmetic` verifier) over the same
`arith` problems on two engines one after the other — prefix caching on, shut down, then
off (`--off-first` swaps them) — and reports, from vLLM's own counters (`vllm:prompt_tokens`,
`vllm:prompt_tokens_cached`; each of the n samples of a request counts its prompt, since vLLM
runs them as child requests), the prompt tokens the engine was given, served from the
cache and computed, beside wall time and generated tokens.

Only whole KV-cache blocks are cached (`policy.kv_block_size`: 32 tokens on CPU by default,
vLLM-CPU's own default is 128), so the tail of a prompt past its last whole block is
recomputed for each sample; the bundled model's few-shot solve prompt is ~490 tokens (printed).
Figures are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    import _common as c

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=16, help="arith problems (default 16: without the cache, "
                        "every sample recomputes its ~500-token prompt at every step)")
    parser.add_argument("--model", default="smollm2-135m")
    c.add_search_arguments(parser, n_iterations=4, max_tokens=192, step_max_tokens=64)
    parser.add_argument("--off-first", action="store_true", help="run the engine without prefix caching first")
    parser.add_argument("--kv-cache-gib", type=float, default=None)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    from search_throughput import build_cell, warm_up

    from ttscale.backends.vllm_engine import get_policy, shutdown_all
    from ttscale.data import load_problems
    from ttscale.runner import CellRuntime
    from ttscale.prompting import PromptBuilder
    from ttscale.planning import prepare_cell
    from ttscale.verifiers import load_verifier

    settings = c.bench_settings(args.kv_cache_gib)
    load_start = c.load_avg()
    started = time.perf_counter()
    cell = build_cell("beam_search", args)
    prepared = prepare_cell(cell, settings)
    problems = load_problems(cell.dataset)
    runs: dict[bool, c.Measured] = {}
    startup: dict[bool, float] = {}
    order = [False, True] if args.off_first else [True, False]
    prompt_tokens = 0
    try:
        for caching in order:
            print(f"prefix caching {'on' if caching else 'off'}: starting the engine ...", file=sys.stderr)
            policy = get_policy(prepared.model_info, settings, seed=cell.seed, enable_prefix_caching=caching, log_stats=True)
            startup[caching] = policy.startup_s
            verifier = load_verifier(cell.verifier, policy, settings)
            info = prepared.model_info
            prompts = PromptBuilder(chat=policy.chat_prompt, format=info.prompt_format, system=info.system_prompt)
            runtime = CellRuntime(prepared, policy, verifier, prompts)
            prompt_tokens = policy.count_tokens([prompts.solve(problems[0].text)])[0]
            warm_up(cell, runtime)
            label = f"prefix caching {'on' if caching else 'off'}"
            print(f"  {label}: beam search over {len(problems)} problems ...", file=sys.stderr)
            runs[caching] = m = c.run_measured(
                label, cell, [problems], runtime, before=policy.reset_prefix_cache if caching else None
            )
            print(f"    {m.wall_s:.1f} s, {m.generated_tokens:,} tokens; {c.engine_summary(m.engine)}", file=sys.stderr)
            policy.shutdown()
        versions = c.vllm_versions()
        dtype, block = policy.dtype, policy.kv_block_size
    finally:
        shutdown_all()
    total_s = time.perf_counter() - started
    load_end = c.load_avg()

    header = [
        "| prefix caching | wall s | generated tokens | tokens/s | prompt tokens given to the engine | from the prefix cache "
        "| **computed** | ttscale-charged prompt tokens | preemptions | CPU s | load 1-min mean (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for caching in (True, False):
        m = runs[caching]
        given = m.engine.get("vllm:prompt_tokens", 0)
        cached = m.engine.get("vllm:prompt_tokens_cached", 0)
        rows.append(
            f"| {'on' if caching else 'off'} | {m.wall_s:.1f} | {m.generated_tokens:,} | {m.tokens_per_s:.0f} | {given:,.0f} "
            f"| {cached:,.0f} ({cached / max(given, 1):.0%}) | **{given - cached:,.0f}** | {m.prompt_tokens:,} "
            f"| {m.engine.get('vllm:num_preemptions', 0):.0f} | {m.cpu_s:.0f} | {m.load} |"
        )
    on, off = runs[True], runs[False]
    computed = {k: runs[k].engine.get("vllm:prompt_tokens", 0) - runs[k].engine.get("vllm:prompt_tokens_cached", 0) for k in runs}
    summary = (
        f"Prompt tokens computed: off / on = **{computed[False] / max(computed[True], 1):.1f}×**; "
        f"wall time off / on = **{off.wall_s / on.wall_s:.2f}×** (tokens/s on / off = {on.tokens_per_s / off.tokens_per_s:.2f}×)."
    )
    print("\n".join(header + rows))
    print(summary)
    if args.no_record:
        return 0
    lines = [
        *c.provenance_lines("prefix_cache.py", argv if argv is not None else sys.argv[1:], versions, total_s, load_start,
                            load_end, c.SHARED_LOAD_NOTE),
        f"- engines: {args.model}, dtype {dtype}, eager, KV cache {settings.kv_cache_gib:g} GiB, KV block {block} tokens, seed {args.seed}; one after the other in one process ({'off' if args.off_first else 'on'} first, "
        f"the first shut down before the second started); start-up {startup[True]:.0f} s (on), {startup[False]:.0f} s (off), "
        "not in the figures; each warmed up on other problems, the cached one's cache emptied before its run",
        f"- work: ttscale's batched beam search (`run_shard`, one shard), {len(problems)} `arith` problems (seed 0), N={args.n}, "
        f"M={args.beam_width}, n_iterations={args.n_iterations}, step_max_tokens={args.step_max_tokens}, "
        f"max_tokens={args.max_tokens}, T={args.temperature:g}, verifier `arithmetic`; solve prompt {prompt_tokens} tokens "
        "(few-shot chat)",
        "",
        *header,
        *rows,
        "",
        summary + " Prompt tokens given / from the prefix cache are vLLM's counters `vllm:prompt_tokens` / "
        "`vllm:prompt_tokens_cached` (each sample counts its prompt); ttscale-charged = what ttscale's accounting "
        "bills (once per request, as if the n samples shared their prompt). Sampling on vLLM-CPU is not repeatable, "
        "so the two runs generate different (statistically alike) text.",
    ]
    c.append_section("prefix_cache", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
