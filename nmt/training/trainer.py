"""The training loop: `train(cfg, run_dir)` reads top to bottom; the Hydra entry point is a thin wrapper."""

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.pipeline import prepare_data
from nmt.data.tokenizer import PAD
from nmt.errors import ConfigError
from nmt.models.seq2seq import build_model, count_parameters
from nmt.training.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from nmt.training.optim import build_optimizer, build_schedule
from nmt.training.runtime import autocast_context, configure_backends, resolve_device, seed_everything
from nmt.training.tensorboard import TrainingLogger
from nmt.training.validation import ValidationData, validate

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Counters that a resumed run must continue from."""

    step: int = 0
    epoch: int = 0
    batches_done_in_epoch: int = 0
    best_bleu: float = -math.inf
    validations_without_improvement: int = 0


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Trains the model described by `cfg`, writing checkpoints, logs and TensorBoard events to run_dir.

    Returns a summary: steps, best validation BLEU, checkpoint paths and the validation history.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    configure_backends(device)
    seed_everything(cfg.seed, cfg.trainer.num_threads)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    data = prepare_data(cfg, run_dir)
    tokenizers = data.tokenizers
    model = build_model(cfg.model, tokenizers.src.vocab_size, tokenizers.tgt.vocab_size,
                        shared_vocab=tokenizers.joint).to(device)
    log.info("model: %s parameters, %s-style decoder, %s attention", f"{count_parameters(model):,}",
             cfg.model.decoder_style, cfg.model.attention.name)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    schedule = build_schedule(cfg.scheduler, optimizer)
    progress = Progress()
    if cfg.resume:
        _resume(cfg.resume, run_dir, model, optimizer, schedule, progress)

    valid = ValidationData(data.valid_src_ids, data.valid_tgt_ids, data.valid_tgt_text)
    if cfg.trainer.valid_max_sentences:
        n = cfg.trainer.valid_max_sentences
        valid = ValidationData(valid.src_ids[:n], valid.tgt_ids[:n], valid.references[:n])
    sampler = TokenBatchSampler([len(s) + 1 for s in data.train_src_ids],
                                [len(t) + 1 for t in data.train_tgt_ids],
                                cfg.trainer.batch_tokens, shuffle=True, seed=cfg.seed)
    logger = TrainingLogger(run_dir, enabled=True)
    ckpt_dir = run_dir / "checkpoints"

    def checkpoint_state() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "progress": asdict(progress),
                "rng": capture_rng_state(), "config": OmegaConf.to_container(cfg, resolve=True),
                "tokenizers": tokenizers.to_dict()}

    max_steps = cfg.trainer.max_steps or math.inf
    max_epochs = cfg.trainer.max_epochs or math.inf
    if max_steps == math.inf and max_epochs == math.inf:
        raise ConfigError("set trainer.max_steps or trainer.max_epochs: a run needs a bound")
    total = max_steps if max_steps < math.inf else max_epochs * len(sampler)
    bar = tqdm(total=total, initial=progress.step, disable=not cfg.trainer.progress, unit="step",
               dynamic_ncols=True, mininterval=1.0)
    history: list[dict] = []
    stop = False
    tokens_since, time_since = 0, time.perf_counter()
    while not stop and progress.epoch < max_epochs:
        sampler.set_epoch(progress.epoch)
        batches = list(sampler)
        for indices in batches[progress.batches_done_in_epoch:]:
            batch = collate([data.train_src_ids[i] for i in indices], [data.train_tgt_ids[i] for i in indices],
                            indices).to(device, non_blocking=True)
            model.train()
            loss, grad_norm = train_step(model, optimizer, batch, cfg.trainer, device)
            schedule.step()
            progress.step += 1
            progress.batches_done_in_epoch += 1
            tokens_since += batch.n_tgt_tokens
            bar.update(1)
            if progress.step % cfg.trainer.log_every == 0 or progress.step == 1:
                elapsed = time.perf_counter() - time_since
                tok_s = tokens_since / max(elapsed, 1e-9)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", epoch=progress.epoch + 1)
                logger.scalars(progress.step, {"train/loss": loss, "train/ppl": math.exp(min(loss, 50)),
                                               "train/lr": schedule.lr(), "train/grad_norm": grad_norm,
                                               "train/tokens_per_s": tok_s})
                tokens_since, time_since = 0, time.perf_counter()
            if progress.step % cfg.trainer.valid_every == 0 or progress.step >= max_steps:
                stop = _validate_and_save(model, valid, tokenizers, cfg, device, progress, schedule,
                                          logger, history, ckpt_dir, checkpoint_state, bar)
            if progress.step >= max_steps:
                stop = True
            if stop:
                break
        else:
            progress.epoch += 1
            progress.batches_done_in_epoch = 0
    bar.close()
    if not history or history[-1]["step"] != progress.step:  # the epoch bound ended the run
        _validate_and_save(model, valid, tokenizers, cfg, device, progress, schedule, logger, history,
                           ckpt_dir, checkpoint_state, None)
    logger.close()
    summary = {"steps": progress.step, "epochs": progress.epoch, "best_bleu": progress.best_bleu,
               "best_checkpoint": str(ckpt_dir / "best.pt"), "last_checkpoint": str(ckpt_dir / "last.pt"),
               "history": history}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("done: %d steps, best validation BLEU %.2f, checkpoints in %s", progress.step,
             progress.best_bleu, ckpt_dir)
    return summary


def train_step(model, optimizer, batch, tcfg, device) -> tuple[float, float]:
    """One update on one batch; returns the loss per target token and the gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    with autocast_context(device, tcfg.precision):
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
    # The loss is computed in fp32 and averaged over real target tokens, not sentences.
    loss = F.cross_entropy(logits.flatten(0, 1).float(), batch.tgt_out.flatten(), ignore_index=PAD,
                           label_smoothing=tcfg.label_smoothing, reduction="sum") / batch.n_tgt_tokens
    loss.backward()
    max_norm = tcfg.clip_grad_norm or math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.item(), grad_norm.item()


def _validate_and_save(model, valid, tokenizers, cfg, device, progress, schedule, logger, history,
                       ckpt_dir, checkpoint_state, bar) -> bool:
    """Validates, logs, saves last.pt (and best.pt on a new best); returns True to stop early."""
    t = cfg.trainer
    result = validate(model, valid, tokenizers, batch_tokens=t.batch_tokens * 2,
                      batch_sentences=t.valid_batch_sentences, max_len_b=t.valid_max_len_b,
                      plot_sentences=t.plot_sentences, device=device)
    improved = result.bleu > progress.best_bleu
    if improved:
        progress.best_bleu = result.bleu
        progress.validations_without_improvement = 0
    else:
        progress.validations_without_improvement += 1
    schedule.on_validation(result.bleu)
    record = {"step": progress.step, "epoch": progress.epoch + 1, "valid_loss": result.loss,
              "valid_ppl": result.ppl, "valid_bleu": result.bleu, "lr": schedule.lr()}
    history.append(record)
    logger.validation(progress.step, result)
    line = (f"step {progress.step:>6} | epoch {progress.epoch + 1} | valid loss {result.loss:.3f} | "
            f"ppl {result.ppl:.2f} | BLEU {result.bleu:.2f}{' (best)' if improved else ''} | "
            f"lr {schedule.lr():.2e}")
    if bar is not None:
        bar.write(line)
    log.info(line)
    state = checkpoint_state()
    save_checkpoint(state, ckpt_dir / "last.pt")
    if improved:
        save_checkpoint(state, ckpt_dir / "best.pt")
    patience = t.early_stopping_patience
    if patience is not None and progress.validations_without_improvement >= patience:
        log.info("early stopping: no BLEU improvement in %d validations", patience)
        return True
    return False


def _resume(resume, run_dir: Path, model, optimizer, schedule, progress: Progress) -> None:
    path = run_dir / "checkpoints" / "last.pt" if resume is True else Path(str(resume))
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    for key, value in state["progress"].items():
        setattr(progress, key, value)
    restore_rng_state(state["rng"])
    log.info("resumed from %s at step %d", path, progress.step)
