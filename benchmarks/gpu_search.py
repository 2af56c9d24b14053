"""Search throughput on a GPU worker: batched across problems vs one problem at a time.

    .venv/bin/python benchmarks/gpu_search.py --model meta-llama/Llama-3.2-1B-Instruct \\
        [--verifier rlhflow_prm] [--problems 32] [--dataset math500] [--dry-run] [--no-record]

The comparison of benchmarks/search_throughput.py on a GPU host, with any policy model
(registered name, HF id or local folder), an optional verifier (a PRM: `rlhflow_prm`,
`qwen_prm`; or `self`, `arithmetic`) and MATH-500 by default. Beam search and DVTS run:

  (a) batched across problems, as ttscale does: `runner.search_shard` on one shard of all problems;
  (b) one problem at a time, as the reference does (search-and-learn refuses
      search_batch_size != 1): `run_shard` with a shard of one problem, once per problem;

with one policy engine (and one PRM engine) started once, the same cell (seed, sampling,
search parameters), prefix caches emptied before each measured run, beam search (a) first
and DVTS (b) first. Defaults follow the reference recipe: N=8, M=4, 40 iterations,
max_tokens = step_max_tokens = 2048, T=0.8, top_p=1. Without a verifier the `arithmetic`
checker is used (no model), so the time measured is the policy's alone.

`--dry-run` checks the arguments, the model name, the verifier and the dataset and prints
the plan without loading any model (it runs anywhere). A real run needs a CUDA GPU and the
model weights (HF hub access or a local folder); it refuses to start without a GPU. Figures
are appended to benchmarks/RESULTS.md with the GPU's name.
"""

from __future__ import annotations

import argparse
import sys
import time

from ttscale.backends.base import GenerationRequest

VERIFIERS = ("arithmetic", "self", "rlhflow_prm", "qwen_prm")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    import _common as c

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: .venv/bin/python benchmarks/gpu_search.py --model meta-llama/Llama-3.2-1B-Instruct "
               "--verifier rlhflow_prm --problems 32",
    )
    parser.add_argument("--model", required=True, help="policy: registered name (ttscale ls models), HF id or local folder")
    parser.add_argument("--verifier", choices=VERIFIERS, default=None,
                        help="step scorer (default: `arithmetic`, no model, so only the policy is timed)")
    parser.add_argument("--dataset", default="math500", help="math500 (default), gsm8k, arith, or a .jsonl path")
    parser.add_argument("--problems", type=int, default=32, help="problems (the first ones of the dataset; default 32)")
    parser.add_argument("--levels", default=None, help="comma-separated difficulty levels to keep, e.g. 1,2,3")
    parser.add_argument("--strategies", default="beam_search,dvts", help="comma-separated: beam_search, dvts")
    c.add_search_arguments(parser, n_iterations=40, max_tokens=2048, step_max_tokens=2048, depth_note=", the reference's")
    parser.add_argument("--max-model-len", type=int, default=8192, help="engine context length (default 8192)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None,
                        help="policy engine's GPU share (default: 0.45 with a PRM beside it, 0.85 without)")
    parser.add_argument("--eager", action="store_true", help="enforce_eager (no CUDA graphs): faster start, slower decode")
    parser.add_argument("--quick", action="store_true", help="8 problems, 10 iterations, beam search only")
    parser.add_argument("--dry-run", action="store_true", help="check everything and print the plan; load no model")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems, args.n_iterations, args.strategies = 8, 10, "beam_search"
    args.strategy_list = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in args.strategy_list if s not in ("beam_search", "dvts")]
    if bad or not args.strategy_list:
        parser.error(f"--strategies: unknown {bad}; use beam_search, dvts")
    if args.n % args.beam_width:
        parser.error(f"--n must be a multiple of --beam-width ({args.n} % {args.beam_width} != 0)")
    if args.problems < 1:
        parser.error("--problems must be >= 1")
    return args


def build_cells(args) -> dict:
    from pathlib import Path

    from ttscale.spec import CellSpec, DatasetSpec, SamplingParams
    from ttscale.strategy_params import BeamSearchParams, DVTSParams

    if args.dataset.endswith(".jsonl"):
        ds = {"name": "jsonl", "path": str(Path(args.dataset).absolute())}
    else:
        ds = {"name": args.dataset}
    ds["limit"] = args.problems
    if args.levels:
        ds["levels"] = tuple(int(x) for x in args.levels.split(","))
    cells = {}
    for strategy in args.strategy_list:
        params = (BeamSearchParams if strategy == "beam_search" else DVTSParams)(
            beam_width=args.beam_width, n_iterations=args.n_iterations
        )
        cells[strategy] = CellSpec(
            model=args.model,
            verifier=args.verifier or "arithmetic",
            strategy=params,
            n=args.n,
            dataset=DatasetSpec(**ds),
            seed=args.seed,
            sampling=SamplingParams(temperature=args.temperature, top_p=1.0, max_tokens=args.max_tokens,
                                    step_max_tokens=args.step_max_tokens),
        )
    return cells


def load_runtime(cell, settings, args):
    """The cell's runtime as `runner.load_cell_runtime` builds it, with the GPU engine options."""
    from ttscale.backends.vllm_engine import get_policy
    from ttscale.runner import CellRuntime
    from ttscale.prompting import PromptBuilder
    from ttscale.planning import prepare_cell
    from ttscale.verifiers import load_verifier

    prepared = prepare_cell(cell, settings)
    with_prm = cell.verifier in ("rlhflow_prm", "qwen_prm")
    share = args.gpu_memory_utilization or (0.45 if with_prm else 0.85)
    policy = get_policy(prepared.model_info, settings, seed=cell.seed, enforce_eager=args.eager,
                        max_model_len=args.max_model_len, gpu_memory_utilization=share, log_stats=True)
    verifier = load_verifier(cell.verifier, policy, settings)
    info = prepared.model_info
    prompts = PromptBuilder(chat=policy.chat_prompt, format=info.prompt_format, system=info.system_prompt)
    return CellRuntime(prepared, policy, verifier, prompts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import _common as c

    from ttscale.planning import prepare_cell

    from pydantic import ValidationError

    from ttscale.errors import TtscaleError
    from ttscale.spec import format_validation_error

    settings = c.bench_settings()
    try:
        cells = build_cells(args)
        first = cells[args.strategy_list[0]]
        prepared = prepare_cell(first, settings)  # names, dataset: checked before anything loads
    except ValidationError as err:
        print(f"gpu_search: {format_validation_error(err)}", file=sys.stderr)
        return 2
    except TtscaleError as err:
        print(f"gpu_search: {err}", file=sys.stderr)
        return 2
    problems = prepared.problems
    plan = (
        f"model {prepared.model_info.name} ({prepared.model_info.source}), verifier {first.verifier}, "
        f"{len(problems)} {first.dataset.label} problems, strategies {', '.join(args.strategy_list)}, "
        f"N={args.n}, M={args.beam_width}, n_iterations={args.n_iterations}, max_tokens={args.max_tokens}, "
        f"step_max_tokens={args.step_max_tokens}, T={args.temperature:g}, seed {args.seed}"
    )
    print(plan)
    if args.dry_run:
        print("dry run: nothing loaded")
        return 0
    gpu = c.gpu_description()
    if gpu is None:
        print("gpu_search: no CUDA GPU visible; this benchmark is for GPU workers "
              "(on CPU run benchmarks/search_throughput.py)", file=sys.stderr)
        return 2

    from ttscale.runner import release_policies

    load_start = c.load_avg()
    started = time.perf_counter()
    rows: list[str] = []
    figures: dict[str, tuple] = {}
    try:
        runtime = load_runtime(first, settings, args)
        policy = runtime.policy
        startup_s = policy.startup_s
        runtime.policy.generate(GenerationRequest(tuple(runtime.prompts.solve(p.text) for p in problems[:4]), n=args.n,
                                                  max_tokens=16, temperature=args.temperature, stop=("\n\n",), seed=args.seed))  # warm-up

        def reset() -> None:
            policy.reset_prefix_cache()
            inner = getattr(runtime.verifier, "engine", None)
            if inner is not None and hasattr(inner, "reset_prefix_cache"):
                inner.reset_prefix_cache()

        for i, strategy in enumerate(args.strategy_list):
            a, b = c.compare_batched_vs_single(cells[strategy], problems, runtime, single_first=(i % 2 == 1), before=reset,
                                               log=lambda m: print(m, file=sys.stderr))
            figures[strategy] = (a, b)
            rows += c.comparison_rows(strategy, a, b)
        versions = c.vllm_versions()
        dtype = policy.dtype
    finally:
        release_policies()
        from ttscale.backends.vllm_engine import shutdown_all

        shutdown_all()
    total_s = time.perf_counter() - started
    ratios = c.print_comparison(rows, figures)
    if args.no_record:
        return 0
    lines = [
        *c.provenance_lines("gpu_search.py", argv if argv is not None else sys.argv[1:], versions, total_s, load_start),
        f"- engine: dtype {dtype}, {'eager' if args.eager else 'CUDA graphs'}, prefix caching on, max_model_len "
        f"{args.max_model_len}, start {startup_s:.0f} s (not in any figure)",
        f"- work: {plan}",
        "",
        *c.COMPARISON_HEADER,
        *rows,
        "",
        "Ratios (wall time of (b) over (a)): " + ", ".join(f"{s} **{r:.2f}×**" for s, r in ratios.items()) + ".",
    ]
    c.append_section(f"gpu_search ({gpu})", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
