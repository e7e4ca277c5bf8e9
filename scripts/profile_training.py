"""Where a training step's time goes: target tokens/s over a few updates, then a `torch.profiler`
table of two more (not a test; the figures behind BENCHMARKS.md's "CPU training, second round").

    python scripts/profile_training.py --experiment m30k_deen_ref --precision bf16 --batches 14
    python scripts/profile_training.py --shapes --rows 40 data.cache_dir=/tmp/cache

The same batches and initial weights every run (the sampler's first epoch, seed from the config), so
two runs on different code compare the code, not the data. The first update is warm-up and not timed.
"""

import sys
import time
from pathlib import Path

import torch
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import fixed_updates, helper_parser  # noqa: E402

from nmt.cli.common import run_script  # noqa: E402
from nmt.models.fusion import fusion, fusion_wanted  # noqa: E402
from nmt.training.step import train_step  # noqa: E402


def main() -> None:
    parser = helper_parser(__doc__, ["fp32", "bf16", "auto"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=14, help="updates timed after one warm-up update")
    parser.add_argument("--profile-steps", type=int, default=2, help="updates profiled (0: no profile)")
    parser.add_argument("--shapes", action="store_true", help="group the profile by input shapes")
    parser.add_argument("--rows", type=int, default=30, help="rows of the profile table")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg, model, optimizer, batches, tcfg = fixed_updates(args, device, 1 + args.batches + args.profile_steps)
    fused = fusion_wanted(cfg.trainer.compile, device)
    with fusion(fused):
        profile_steps(model, optimizer, batches, tcfg, device, args, fused)


def profile_steps(model, optimizer, batches, tcfg, device, args, fused: bool) -> None:
    train_step(model, optimizer, batches[0], tcfg, device)  # warm-up
    timed = batches[1 : 1 + args.batches]
    start = time.perf_counter()
    for batch in timed:
        train_step(model, optimizer, batch, tcfg, device)
    seconds = time.perf_counter() - start
    tokens = sum(b.n_tgt_tokens for b in timed)
    print(f"{args.experiment} {args.precision} compiled={fused} threads={torch.get_num_threads()}: {len(timed)} updates, "
          f"{tokens} target tokens in {seconds:.2f} s = {tokens / seconds:.0f} target tokens/s", flush=True)
    profiled = batches[1 + args.batches :]
    if profiled:
        with profile(record_shapes=args.shapes) as prof:
            for batch in profiled:
                train_step(model, optimizer, batch, tcfg, device)
        table = prof.key_averages(group_by_input_shape=args.shapes)
        print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40,
                          max_shapes_column_width=70))


if __name__ == "__main__":
    run_script(main)
