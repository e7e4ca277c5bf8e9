"""The matrix-product ceiling of training on this machine: the target tokens/s a model could train at
if nothing but its matrix products ran, each at the speed it reaches alone (not a test).

    python scripts/cpu_ceiling.py --experiment m30k_deen_ref --precision bf16 data.cache_dir=/tmp/cache

It profiles `--batches` eager training updates (the trainer's `train_step`, the sampler's first
batches) recording input shapes, so every matrix product of the forward and the backward is seen with
its shape, and its FLOPs follow from that; times each shape alone in the same precision and thread
count (median of `--repeats`); and prints, per shape, the MFLOP per target token, the GFLOP/s it
reaches alone and its share of the time, then the sum: the seconds of matrix products per update and
the tokens/s they allow. Training cannot be expected to beat that ceiling; a throughput far below it
says the time goes elsewhere (profile_training.py shows where). Shapes
are timed with contiguous operands (the backward's transposed ones may run a little slower), so the
ceiling is, if anything, a little high.
"""

import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import fixed_updates, helper_parser  # noqa: E402

from nmt.cli.common import positive_int, run_script  # noqa: E402
from nmt.training.step import train_step  # noqa: E402

# The profiler's matrix-product operators, and how to read (batch, m, k, n) off their input shapes.
PRODUCTS = {
    "aten::mm": lambda s: (1, s[0][0], s[0][1], s[1][1]),
    "aten::addmm": lambda s: (1, s[1][0], s[1][1], s[2][1]),
    "aten::bmm": lambda s: (s[0][0], s[0][1], s[0][2], s[1][2]),
    "aten::baddbmm": lambda s: (s[1][0], s[1][1], s[1][2], s[2][2]),
}


def main() -> None:
    parser = helper_parser(__doc__, ["fp32", "bf16"])
    parser.add_argument("--batches", type=positive_int, default=2, help="updates profiled, after one warm-up")
    parser.add_argument("--repeats", type=positive_int, default=7, help="timings per shape (the median is used)")
    parser.add_argument("--rows", type=positive_int, default=12, help="shapes listed (by share of the time)")
    args = parser.parse_args()
    device = torch.device("cpu")
    _, model, optimizer, batches, tcfg = fixed_updates(args, device, 1 + args.batches)

    train_step(model, optimizer, batches[0], tcfg, device)  # warm-up
    with profile(record_shapes=True) as prof:
        for batch in batches[1:]:
            train_step(model, optimizer, batch, tcfg, device)
    tokens = sum(b.n_tgt_tokens for b in batches[1:])
    calls = count_products(prof)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    report(calls, tokens, args, dtype)


def count_products(prof) -> dict[tuple[int, int, int, int], int]:
    """Calls of each (batch, m, k, n) matrix product in the profiled updates."""
    calls: dict[tuple[int, int, int, int], int] = defaultdict(int)
    for event in prof.key_averages(group_by_input_shape=True):
        shape_of = PRODUCTS.get(event.key)
        if shape_of is not None and event.input_shapes:
            calls[shape_of(event.input_shapes)] += event.count
    return calls


def seconds_alone(shape: tuple[int, int, int, int], dtype: torch.dtype, repeats: int) -> float:
    """Median seconds of one product of this shape, run alone."""
    b, m, k, n = shape
    x, w = torch.randn(b, m, k).to(dtype), torch.randn(b, k, n).to(dtype)
    run = (lambda: torch.mm(x[0], w[0])) if b == 1 else (lambda: torch.bmm(x, w))
    inner = max(1, int(2e8 // (2 * b * m * k * n)))  # about 0.2 GFLOP per timing, so tiny shapes are not all overhead
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            run()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def report(calls, tokens: int, args, dtype: torch.dtype) -> None:
    rows = []
    for shape, count in calls.items():
        flops = 2 * shape[0] * shape[1] * shape[2] * shape[3] * count
        seconds = seconds_alone(shape, dtype, args.repeats) * count
        rows.append((shape, count, flops, seconds))
    total_flops = sum(r[2] for r in rows)
    total_seconds = sum(r[3] for r in rows)
    updates = args.batches
    print(f"{args.experiment}, {args.precision}, {torch.get_num_threads()} threads, torch {torch.__version__}: "
          f"{updates} updates, {tokens} target tokens, {len(rows)} product shapes, {sum(calls.values())} calls")
    print(f"{'batch x m x k x n':>26} {'calls/upd':>9} {'MFLOP/tok':>9} {'GFLOP/s':>8} {'time %':>6}")
    for shape, count, flops, seconds in sorted(rows, key=lambda r: -r[3])[: args.rows]:
        print(f"{' x '.join(map(str, shape)):>26} {count / updates:9.1f} {flops / tokens / 1e6:9.2f} "
              f"{flops / seconds / 1e9:8.1f} {100 * seconds / total_seconds:6.1f}")
    print(f"matrix products: {total_flops / tokens / 1e6:.1f} MFLOP per target token, "
          f"{total_seconds / updates:.3f} s per update alone at {total_flops / total_seconds / 1e9:.0f} GFLOP/s "
          f"-> ceiling {tokens / total_seconds:,.0f} target tokens/s")


if __name__ == "__main__":
    run_script(main)
