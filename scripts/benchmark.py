"""Speed benchmark: training and decoding throughput of one experiment, as one JSON line.

    python scripts/benchmark.py --experiment m30k_deen_ref --device cpu --steps 30
    python scripts/benchmark.py --all-attention --steps 10 --decode-sentences 200
    python scripts/benchmark.py --full --device cuda            # train to the end, then test BLEU
    python scripts/benchmark.py --full --experiment m30k_deen_fast --average --device cuda
    python scripts/benchmark.py --checkpoint runs/x/checkpoints/best.pt --steps 5   # a trained model

Quick mode (the default) times ``--steps`` training updates after ``--warmup`` untimed ones, exactly as
``nmt-train`` makes them (same batches, same ``train_step``), and estimates the epoch time from the
tokens/s and the epoch's target token count. It then decodes the first ``--decode-sentences`` sentences
of test_2016_flickr greedily and with beam 5 (before the training steps). An untrained model rarely
stops early, so its decoding runs close to the length limit: the mean output length is reported beside
the speed, and ``--checkpoint`` decodes with trained weights instead.

``--full`` runs ``nmt.training.trainer.train`` to its end (validations and checkpoints included), loads
the best checkpoint (``--average``: the average of the kept ones, as ``nmt-average`` makes it) and
reports test BLEU (beam 5, sacreBLEU) and the seconds from process start to that score (data
preparation included; ``data_cached`` says whether the prepared data came from cache).
Stopped by SIGTERM or SIGINT, it prints the training figures so far with ``stopped_by`` and exits 143/130.

With ``tokenizer.subword_alpha`` (subword sampling), ``nmt-train`` trains on a new sampled segmentation
every epoch, about 1.1 times as many tokens on Multi30k; the benchmark's batches and token counts are of
the fixed segmentation (quick mode times them, ``--full`` counts its updates' tokens on them), so
``train_tgt_tokens`` and ``epochs`` are that much low there: every line gives ``subword_alpha``.

Extra ``key=value`` arguments are Hydra overrides, as for ``nmt-train``. Every line also records the
machine's load average at start and end: on a shared CPU the figures move with it.
"""

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

import nmt
from nmt.cli.common import compose_checked, positive_int, run_script
from nmt.cli.stdout_errors import ArgumentParser
from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.pipeline import cache_key, load_test_split, prepare_data
from nmt.data.tokenizer import Tokenizers
from nmt.errors import ConfigError
from nmt.inference.batching import search_many
from nmt.inference.metrics import bleu_score
from nmt.inference.translator import Translator
from nmt.models.attention import available_attentions
from nmt.models.fusion import fusion, fusion_wanted
from nmt.models.seq2seq import build_model, count_parameters
from nmt.training.averaging import write_average
from nmt.training.checkpoint import load_checkpoint
from nmt.training.optim import build_optimizer
from nmt.training.options import check_run_options
from nmt.training.runtime import cpu_has_native_bf16, prepare_cpu_runtime, resolve_device, seed_everything
from nmt.training.signals import TrainingStopped
from nmt.training.step import train_step
from nmt.training.trainer import train

IMPORTED_AT = time.perf_counter()
TEST_SPLIT = "test_2016_flickr"
# (decoder_style, input_feeding) pairs of --all-attention; input feeding only exists in the Luong style.
DECODER_STYLES = [("bahdanau", False), ("luong", True), ("luong", False)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="m30k_deen_ref", help="configs/experiment/NAME.yaml")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--steps", type=positive_int, default=30, help="timed training steps (quick mode)")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps before the timed ones")
    p.add_argument("--decode-sentences", type=positive_int, default=None,
                   help=f"decode the first N sentences of {TEST_SPLIT} (default: all)")
    p.add_argument("--decode-batch", type=positive_int, default=64, help="sentences per decoding batch")
    p.add_argument("--checkpoint", default=None,
                   help="start from this checkpoint's weights and config (e.g. to decode with a trained model)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--full", action="store_true", help="train to the end, then test BLEU and time to it")
    p.add_argument("--run-dir", default=None, help="--full: the run folder (default: a temporary one)")
    p.add_argument("--average", action="store_true",
                   help="--full: score the average of the kept checkpoints (trainer.keep_best_checkpoints), not best.pt")
    p.add_argument("--all-attention", action="store_true",
                   help="one line per attention variant x decoder style (bahdanau, luong +/- input feeding)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.batch_tokens=8192")
    args = p.parse_args(argv)
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0; got {args.warmup}")
    if args.checkpoint and (args.full or args.all_attention):
        p.error("--checkpoint goes with the quick mode only")
    if args.average and not args.full:
        p.error("--average goes with --full")
    return args


def compose_config(experiment: str, device: str, overrides: list[str]) -> DictConfig:
    """nmt-train's config for `experiment=EXPERIMENT` and the overrides, with its one-line errors for
    an unknown experiment or option and for an invalid value, before any data is read."""
    cfg = compose_checked("train", [f"experiment={experiment}", f"device={device}", *overrides])
    check_run_options(cfg)
    return cfg


def checkpoint_config(path: str, device: str, overrides: list[str]) -> DictConfig:
    """The training config stored in a checkpoint, with `key=value` overrides; the data folder is
    NMT_DATA_DIR when set (the stored one belongs to the machine that trained it)."""
    cfg = OmegaConf.create(load_checkpoint(path)["config"])
    cfg.device = device
    if os.environ.get("NMT_DATA_DIR"):
        cfg.data.root = os.environ["NMT_DATA_DIR"]
    cfg.merge_with_dotlist(overrides)
    return cfg


def git_commit() -> str:
    """Short HEAD hash of the checkout holding the imported `nmt` package, with '+ uncommitted
    changes' when tracked files differ from it."""
    source = Path(nmt.__file__).resolve().parents[1]

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=source, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return f"unknown (no git checkout at {source})"
    return head + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or the process's RSS high-water mark (Linux)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset VmHWM to the current RSS
    except OSError:
        pass  # not Linux: the peak then covers the whole process


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_sampler(cfg: DictConfig, data) -> TokenBatchSampler:
    """The trainer's batches: length-bucketed under trainer.batch_tokens, shuffled by the seed."""
    return TokenBatchSampler([len(s) + 1 for s in data.train_src_ids], [len(t) + 1 for t in data.train_tgt_ids],
                             cfg.trainer.batch_tokens, shuffle=True, seed=cfg.seed)


def helper_parser(doc: str, precisions: list[str]) -> ArgumentParser:
    """The options of the helper scripts that time or profile fixed training updates
    (profile_training.py, cpu_ceiling.py): the experiment, precision, threads and config overrides."""
    parser = ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--experiment", default="m30k_deen_ref")
    parser.add_argument("--precision", default="bf16", choices=precisions)
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.cache_dir=/tmp/cache")
    return parser



def fixed_updates(args: argparse.Namespace, device: torch.device, count: int):
    """What those scripts train on, the same every run: the trainer's CPU runtime with `args.threads`,
    the config of `args.experiment` with `args.overrides`, its first `count` batches on `device`, the
    seeded model and its optimizer, and the trainer options with `args.precision`.
    Returns (cfg, model, optimizer, batches, tcfg)."""
    prepare_cpu_runtime()  # as the trainer does
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = compose_config(args.experiment, str(device), args.overrides)
    data = prepare_data(cfg)
    batches = [b.to(device) for b in first_batches(cfg, data, count)]
    model = seeded_model(cfg, data).to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    tcfg = OmegaConf.merge(cfg.trainer, {"precision": args.precision})
    return cfg, model, optimizer, batches, tcfg


def first_batches(cfg: DictConfig, data, count: int) -> list:
    """The first `count` batches of the trainer's first epoch, collated: the same ones every run."""
    sampler = make_sampler(cfg, data)
    sampler.set_epoch(0)
    return [collate([data.train_src_ids[j] for j in b], [data.train_tgt_ids[j] for j in b], b)
            for b in list(sampler)[:count]]


def seeded_model(cfg: DictConfig, data) -> torch.nn.Module:
    """The experiment's model with the initial weights of the config's seed."""
    torch.manual_seed(cfg.seed)
    tok = data.tokenizers
    return build_model(cfg.model, tok.src.vocab_size, tok.tgt.vocab_size, shared_vocab=tok.joint)


def measure_training(model, cfg: DictConfig, data, device: torch.device, steps: int, warmup: int) -> dict:
    """Target tokens/s over `steps` updates after `warmup` ones, on the trainer's own batches."""
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    sampler = make_sampler(cfg, data)
    batches, epoch = [], 0
    while len(batches) < warmup + steps:  # a tiny corpus may need more than one epoch
        sampler.set_epoch(epoch)
        batches += list(sampler)
        epoch += 1
    model.train()
    tokens, losses = 0, []
    for i, indices in enumerate(batches[: warmup + steps]):
        if i == warmup:
            sync(device)
            start, tokens = time.perf_counter(), 0
        batch = collate([data.train_src_ids[j] for j in indices], [data.train_tgt_ids[j] for j in indices],
                        indices).to(device, non_blocking=True)
        loss, _ = train_step(model, optimizer, batch, cfg.trainer, device)  # .item() syncs every step
        tokens += batch.n_tgt_tokens
        losses.append(loss)
    seconds = time.perf_counter() - start
    tok_s = tokens / seconds
    epoch_tokens = sum(len(t) + 1 for t in data.train_tgt_ids)
    return {"train_steps": steps, "train_warmup_steps": warmup, "train_tgt_tokens": tokens,
            "train_s": round(seconds, 3), "train_tgt_tokens_per_s": round(tok_s, 1),
            "epoch_tgt_tokens": epoch_tokens, "epoch_s": round(epoch_tokens / tok_s, 2),
            "epoch_s_source": "estimated from tokens/s", "final_train_loss": round(losses[-1], 4)}


def measure_decoding(model, cfg: DictConfig, tokenizers: Tokenizers, device: torch.device, n: int | None,
                     batch_sentences: int, beams: tuple[int, ...] = (1, 5)) -> tuple[dict, dict]:
    """Sentences/s of greedy and beam search on the test split; also returns the hypotheses' text."""
    src_text, references = load_test_split(cfg, TEST_SPLIT)
    src_text, references = src_text[:n], references[:n]
    src_ids = tokenizers.src.encode(src_text)
    model.eval()
    search_many(model, src_ids[:8], beam_size=5, batch_sentences=8, device=device)  # warm-up
    figures, texts = {"decode_split": TEST_SPLIT, "decode_sentences": len(src_ids),
                      "decode_batch_sentences": batch_sentences}, {}
    for beam in beams:
        name = "greedy" if beam == 1 else f"beam{beam}"
        sync(device)
        start = time.perf_counter()
        hyps = search_many(model, src_ids, beam_size=beam, batch_sentences=batch_sentences, device=device)
        sync(device)
        seconds = time.perf_counter() - start
        best = [nbest[0].tokens if nbest else [] for nbest in hyps]
        figures[f"decode_{name}_s"] = round(seconds, 3)
        figures[f"decode_{name}_sents_per_s"] = round(len(src_ids) / seconds, 1)
        figures[f"decode_{name}_mean_len"] = round(sum(map(len, best)) / max(len(best), 1), 2)
        texts[name] = (tokenizers.tgt.decode(best), references)
    return figures, texts


def data_is_cached(cfg: DictConfig) -> bool:
    """Whether prepare_data will find its cache (same path rule as nmt.data.pipeline.prepare_data)."""
    if not cfg.data.get("cache"):
        return False
    folder = cfg.data.get("cache_dir") or Path(cfg.data.get("root") or "data") / "cache"
    return (Path(folder).expanduser().absolute() / f"prepared-{cache_key(cfg)}.npz").exists()


def describe(cfg: DictConfig, device: torch.device, experiment: str, overrides: list[str]) -> dict:
    m = cfg.model
    # bf16 on a CPU without bf16 instructions is emulated (3x slower than fp32): say which kind ran.
    native_bf16 = cpu_has_native_bf16() if device.type == "cpu" else None
    return {"device": device.type, "device_name": device_name(device), "cpu_native_bf16": native_bf16,
            "threads": torch.get_num_threads(),
            # PASSIVE costs 20% of CPU training at idle (nmt/training/runtime.py): say which ran.
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "load_avg_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__, "commit": git_commit(),
            "experiment": experiment, "overrides": overrides, "attention": m.attention.name,
            "decoder_style": m.decoder_style,
            "input_feeding": bool(m.decoder_style == "luong" and m.input_feeding), "rnn_type": m.rnn_type,
            "precision": resolved_precision(cfg.trainer.precision, device), "batch_tokens": cfg.trainer.batch_tokens,
            "subword_alpha": cfg.tokenizer.get("subword_alpha")}


def resolved_precision(precision: str, device: torch.device) -> str:
    """What trainer.precision means on this device (the rule of nmt.training.runtime.autocast_context)."""
    if precision == "auto":
        return "bf16 autocast" if device.type == "cuda" else "fp32"
    return "bf16 autocast" if precision == "bf16" else "fp32"


def quick_run(cfg: DictConfig, args, device: torch.device, data, data_s: float, cached: bool) -> dict:
    seed_everything(cfg.seed, args.threads or cfg.trainer.num_threads)
    label = f"checkpoint ({cfg.get('name')})" if args.checkpoint else args.experiment
    result = describe(cfg, device, label, args.overrides)
    tok = data.tokenizers
    model = build_model(cfg.model, tok.src.vocab_size, tok.tgt.vocab_size, shared_vocab=tok.joint)
    if args.checkpoint:
        model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
        result["checkpoint"] = args.checkpoint
    model.to(device)
    result.update(mode="quick", params=count_parameters(model), data_s=round(data_s, 2), data_cached=cached)
    reset_peak_memory(device)
    # Decoding first, with the weights as built or loaded; then the training steps change them.
    figures, texts = measure_decoding(model, cfg, tok, device, args.decode_sentences, args.decode_batch)
    bleu = round(bleu_score(*texts["beam5"]), 2) if args.checkpoint else None  # untrained: meaningless
    fused = fusion_wanted(cfg.trainer.compile, device)
    with fusion(fused):  # as the trainer does; decoding above is the translate command's, not fused
        result.update(measure_training(model, cfg, data, device, args.steps, args.warmup), compiled=fused)
    result.update(figures, peak_mem_mb=round(peak_memory_mb(device), 1), bleu=bleu, time_to_bleu_s=None,
                  load_avg_1m_end=round(os.getloadavg()[0], 2))
    return result


def full_run(cfg: DictConfig, args, device: torch.device) -> dict:
    """Trains to the end with the real trainer, then scores the best checkpoint on the test split.

    Stopped by SIGINT/SIGTERM (a time limit's `timeout`), it still reports what it measured, the
    training speed up to the saved checkpoint, with `stopped_by` set and no test BLEU.
    """
    if args.average and (cfg.trainer.keep_best_checkpoints or 0) < 2:  # found out before training, not after
        raise ConfigError(f"--average needs trainer.keep_best_checkpoints of 2 or more (now "
                          f"{cfg.trainer.keep_best_checkpoints}), e.g. trainer.keep_best_checkpoints=5")
    seed_everything(cfg.seed, args.threads or cfg.trainer.num_threads)
    result = describe(cfg, device, args.experiment, args.overrides)
    result.update(mode="full", data_cached=data_is_cached(cfg))
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="nmt-bench-"))
    cfg.trainer.num_threads = args.threads or cfg.trainer.num_threads
    reset_peak_memory(device)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON line only
            summary = train(cfg, run_dir)
    except TrainingStopped as stopped:
        result.update(run_dir=str(run_dir), **stopped_figures(cfg, stopped, time.perf_counter() - start, device))
        return result
    train_s = time.perf_counter() - start
    scored = summary["best_checkpoint"]
    if args.average:  # as nmt-average does, and timed with the rest
        scored, kept = write_average(run_dir / "checkpoints", None)
        result["averaged_checkpoints"] = len(kept)
    translator = Translator.load(scored, str(device))
    figures, texts = measure_decoding(translator.model, cfg, translator.tokenizers, device,
                                      args.decode_sentences, args.decode_batch)
    bleu = bleu_score(*texts["beam5"])
    time_to_bleu = process_age_s()
    result.update(params=count_parameters(translator.model), run_dir=str(run_dir),
                  **training_figures(cfg, prepare_data(cfg), summary["steps"], train_s),  # cached by now
                  best_valid_bleu=round(summary["best_bleu"], 2), **figures,
                  peak_mem_mb=round(peak_memory_mb(device), 1), bleu=round(bleu, 2),
                  bleu_checkpoint=Path(scored).name, bleu_signature="sacreBLEU 13a mixed case; beam 5, length penalty 1.0",
                  time_to_bleu_s=round(time_to_bleu, 1), load_avg_1m_end=round(os.getloadavg()[0], 2))
    return result


def stopped_figures(cfg: DictConfig, stopped: TrainingStopped, train_s: float, device: torch.device) -> dict:
    """What a --full run stopped by a signal measured: its training up to the checkpoint it saved."""
    history = load_checkpoint(stopped.checkpoint)["history"]
    data = prepare_data(cfg)  # cached by now
    tok = data.tokenizers
    model = build_model(cfg.model, tok.src.vocab_size, tok.tgt.vocab_size, shared_vocab=tok.joint)
    return dict(params=count_parameters(model), **training_figures(cfg, data, stopped.step, train_s),
                best_valid_bleu=round(max((h["valid_bleu"] for h in history), default=math.nan), 2),
                decode_greedy_sents_per_s=None, decode_beam5_sents_per_s=None,
                peak_mem_mb=round(peak_memory_mb(device), 1), bleu=None, time_to_bleu_s=None,
                stopped_by=stopped.reason.name, load_avg_1m_end=round(os.getloadavg()[0], 2))


def training_figures(cfg: DictConfig, data, steps: int, train_s: float) -> dict:
    """A --full run's training speed: its `steps` updates' target tokens over `train_s`."""
    tokens, epochs = trained_tokens(cfg, data, steps)
    return dict(train_steps=steps, train_s=round(train_s, 2), train_tgt_tokens=tokens,
                train_tgt_tokens_per_s=round(tokens / train_s, 1), epochs=round(epochs, 3),
                epoch_s=round(train_s / epochs, 2) if epochs else None,
                epoch_s_source="measured (incl. validation)")


def trained_tokens(cfg: DictConfig, data, steps: int) -> tuple[int, float]:
    """Target tokens and epochs of the first `steps` updates, replaying the trainer's seeded batches."""
    sampler = make_sampler(cfg, data)
    tokens, epoch, left = 0, 0, steps
    while left > 0:
        sampler.set_epoch(epoch)
        for indices in list(sampler)[:left]:
            tokens += sum(len(data.train_tgt_ids[i]) + 1 for i in indices)
        left -= len(sampler)
        epoch += 1
    return tokens, steps / len(sampler)


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc), else since this module was imported."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - IMPORTED_AT


def variants() -> list[list[str]]:
    """Overrides for every attention x decoder style combination."""
    return [[f"model/attention={name}", f"model.decoder_style={style}", f"model.input_feeding={feeding}"]
            for name in available_attentions() for style, feeding in DECODER_STYLES]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    prepare_cpu_runtime()  # as the trainer does
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = [[]] if not args.all_attention else variants()
    device = resolve_device(args.device)
    data = None
    for extra in runs:
        if args.checkpoint:
            cfg = checkpoint_config(args.checkpoint, args.device, args.overrides)
        else:
            cfg = compose_config(args.experiment, args.device, [*args.overrides, *extra])
        OmegaConf.set_struct(cfg, False)
        if args.full:
            result = full_run(cfg, args, device)
        else:
            if data is None:  # every variant shares the data (the tokenizer does not depend on the model)
                cached, start = data_is_cached(cfg), time.perf_counter()
                data = prepare_data(cfg)
                data_s = time.perf_counter() - start
            result = quick_run(cfg, args, device, data, data_s, cached)
        if extra:
            result["overrides"] = [*args.overrides, *extra]
        print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in result.items()}), flush=True)
        if result.get("stopped_by"):  # the line above holds what was measured; the job was asked to end
            sys.exit(128 + signal.Signals[result["stopped_by"]])


if __name__ == "__main__":
    run_script(main)  # a user mistake (an option, missing data, no GPU): one line, exit status 2
