"""In-process A/B of CPU training settings for one model (not a test): the same batches and initial
weights, each setting with its own optimizer, taking turns so machine load hits all alike.

    python scripts/ab_cpu_backends.py --experiment m30k_deen_ref --batches 6 --rounds 3

Settings: A = oneDNN off for the whole process, fp32 (what the trainer did before); B = oneDNN on
except around whole-sequence nn.GRU/nn.LSTM calls (`nmt.models.recurrence.run_cpu_rnn`), fp32; C = as
B, with bf16 autocast (those calls themselves stay in fp32). Since commit `1a78d5c` the CPU encoder
makes no such call (`padded_recurrence`), so only the Luong decoder without input feeding still does.
Prints target tokens/s per setting after every round (the first batch of round 0 is warm-up) and
the losses, which must agree closely between A and B (same maths) and roughly with C (bf16).
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import compose_config, first_batches, seeded_model  # noqa: E402

from nmt.data.pipeline import prepare_data  # noqa: E402
from nmt.training.optim import build_optimizer  # noqa: E402
from nmt.training.step import train_step  # noqa: E402

SETTINGS = {"A fp32, oneDNN off": (False, "fp32"), "B fp32, oneDNN on except RNN calls": (True, "fp32"),
            "C bf16, oneDNN on except RNN calls": (True, "bf16")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="m30k_deen_ref")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.cache_dir=/tmp/cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = compose_config(args.experiment, "cpu", args.overrides)
    data = prepare_data(cfg)
    batches = first_batches(cfg, data, args.batches)
    base = seeded_model(cfg, data).train()
    models = {name: copy.deepcopy(base) for name in SETTINGS}
    optimizers = {name: build_optimizer(cfg.optimizer, models[name].parameters()) for name in SETTINGS}
    seconds, tokens, losses = dict.fromkeys(SETTINGS, 0.0), dict.fromkeys(SETTINGS, 0), {n: [] for n in SETTINGS}
    for round_ in range(args.rounds):
        for name, (onednn, precision) in SETTINGS.items():
            torch.backends.mkldnn.enabled = onednn
            tcfg = OmegaConf.merge(cfg.trainer, {"precision": precision})
            for i, batch in enumerate(batches):
                start = time.perf_counter()
                loss, _ = train_step(models[name], optimizers[name], batch, tcfg, torch.device("cpu"))
                if round_ or i:
                    seconds[name] += time.perf_counter() - start
                    tokens[name] += batch.n_tgt_tokens
                losses[name].append(round(loss, 3))
        print(round_, {name: round(tokens[name] / seconds[name]) for name in SETTINGS}, flush=True)
    for name in SETTINGS:
        print(f"{name}: {round(tokens[name] / seconds[name])} target tokens/s; losses {losses[name][:4]} ... "
              f"{losses[name][-3:]}")


if __name__ == "__main__":
    main()
