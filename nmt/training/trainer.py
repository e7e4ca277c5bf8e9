"""The training loop: `train(cfg, run_dir)` reads top to bottom; the Hydra entry point is a thin wrapper.
One update (forward, loss, backward, optimizer step) is `step.train_step`.

What can go wrong is handled by small helpers: `resume` (continuing exactly), `signals` (SIGINT and
SIGTERM save and stop), `guards` (NaN/Inf losses, out of memory) and `checkpoint` (atomic files).
Under torchrun, `distributed` says which batches each rank trains on; only rank 0 validates and
writes, and every decision (stop on a signal, early stopping, the schedule) is taken from values
that are the same on all ranks.
"""

import contextlib
import json
import logging
import math
import signal
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nmt.data.batching import TokenBatchSampler, collate, longest_side
from nmt.data.corpus import hub_progress_bars
from nmt.data.epoch_sample import FILE_NAME as EPOCH_SAMPLE
from nmt.data.epoch_sample import load_epoch_sample, save_epoch_sample
from nmt.data.pipeline import prepare_data, validation_overlap_warning
from nmt.data.prepared import PreparedData
from nmt.data.storage import id_lengths
from nmt.data.subword_sampling import SubwordSampling
from nmt.data.tokenizer import Tokenizers
from nmt.errors import ConfigError
from nmt.files import folder_write_problem
from nmt.models.fusion import fusion, fusion_wanted
from nmt.models.seq2seq import build_model, count_parameters
from nmt.training.checkpoint import (
    capture_rng_state,
    remove_stale_temporaries,
    rng_preserved,
    save_checkpoint,
)
from nmt.training.distributed import (
    ONE_PROCESS,
    Update,
    World,
    close_world,
    init_world,
    updates,
    updates_per_epoch,
)
from nmt.training.ema import WeightAverage, scored_state
from nmt.training.guards import check_finite, out_of_memory_advice
from nmt.training.initial import initialise, load_initial
from nmt.training.kept import keep_if_among_best
from nmt.training.optim import build_optimizer, build_schedule
from nmt.training.options import check_run_options
from nmt.training.resume import (
    Progress,
    carry_best_checkpoint,
    checkpoint_to_resume,
    load_for_resume,
    restore,
    training_state,
)
from nmt.training.risk import RiskObjective
from nmt.training.runtime import (
    passive_wait_warning,
    prepare_cpu_runtime,
    seed_everything,
    slow_bf16_warning,
    too_many_threads_warning,
)
from nmt.training.signals import StopOnSignal, StopReason, TrainingStopped
from nmt.training.step import train_step
from nmt.training.tensorboard import TrainingLogger
from nmt.training.validation import (
    METRIC_NAMES,
    ValidationData,
    long_pairs_warning,
    metric_score,
    metric_text,
    metric_value,
    validate,
)

log = logging.getLogger(__name__)

# The reason this rank gives when another rank was asked to stop (it cannot know which signal came).
SIGTERM_ELSEWHERE = StopReason.of_signal(signal.SIGTERM)


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Trains the model described by `cfg`, writing checkpoints, logs and TensorBoard events to run_dir.

    Returns a summary: steps, best validation BLEU, the best score of trainer.best_metric, checkpoint
    paths and the validation history.
    Raises TrainingStopped after saving when SIGINT/SIGTERM/SIGHUP arrives or standard output fails
    (see nmt.training.signals), and NMTError on user mistakes.
    A signal that arrives once the run is complete (in its last update or final validation) stops
    nothing; the summary's "stopped_by" then holds its StopReason.
    Started by torchrun (WORLD_SIZE > 1), it trains with DistributedDataParallel in rank 0's run_dir.
    """
    check_run_options(cfg)
    world, device = init_world(cfg.device)
    try:
        fused = fusion_wanted(cfg.trainer.compile, device)
        if fused and world.is_main:  # otherwise the first, slow updates are unexplained
            log.info("trainer.compile=%s: element-wise steps run through torch.compile; the first updates "
                     "wait while it compiles them", str(cfg.trainer.compile).lower())
        with fusion(fused):
            summary = _train(cfg, Path(world.from_main(str(run_dir))), world, device)
        # All ranks finish before any tears the process group down: a rank whose peers vanished while
        # it was still closing its own connections was seen to abort (SIGABRT) in CI.
        world.barrier()
        return summary
    finally:
        close_world(world)


def _train(cfg: DictConfig, run_dir: Path, world: World, device: torch.device) -> dict:
    # Before the first product: oneDNN cache bound, freed memory kept (not for minimum risk training).
    prepare_cpu_runtime(keep_freed=not cfg.trainer.get("risk_weight"))
    warnings = (slow_bf16_warning(device, cfg.trainer.precision),
                passive_wait_warning(device, cfg.trainer.num_threads),
                too_many_threads_warning(cfg.trainer.num_threads, "trainer.num_threads"))
    for warning in warnings:
        if warning and world.is_main:
            log.warning(warning)
    sampling = SubwordSampling.from_config(cfg.tokenizer)  # None: the prepared segmentation every epoch
    # Nothing is written into the run folder until every check has passed, the resumed checkpoint's
    # tokenizers and weights included: a refused command leaves an existing run as it was.
    if world.is_main:
        _check_writable(run_dir)
    resume_from = checkpoint_to_resume(cfg.resume, run_dir)
    resumed = load_for_resume(resume_from, cfg) if resume_from is not None else None
    # init_from starts a new run; once it has, the run resumes from its own checkpoints, which hold
    # the same SentencePiece models, so the init_from file (and option) is no longer needed.
    init_from = cfg.get("init_from")
    initial = load_initial(init_from, cfg) if init_from and resumed is None else None
    fine_tuning = resumed is not None and resumed["config"].get("init_from")
    models_from = initial if initial is not None else resumed if fine_tuning else None
    given_tokenizers = Tokenizers.from_dict(models_from["tokenizers"]) if models_from is not None else None
    # Rank 0's seed is the single-process one; other ranks draw other dropout masks. DDP copies
    # rank 0's initial weights to every rank.
    seed_everything(cfg.seed + world.rank, cfg.trainer.num_threads)

    # Rank 0 prepares (and caches) the data first, so the other ranks read its cache.
    with hub_progress_bars(cfg.data, shown=cfg.trainer.progress and world.is_main):
        data = prepare_data(cfg, tokenizers=given_tokenizers) if world.is_main else None
        world.barrier()
        data = data or prepare_data(cfg, tokenizers=given_tokenizers)
    overlap = validation_overlap_warning(cfg.data) if world.is_main else None
    if overlap:
        log.warning(overlap)
    tokenizers = data.tokenizers
    model = build_model(cfg.model, tokenizers.src.vocab_size, tokenizers.tgt.vocab_size,
                        shared_vocab=tokenizers.joint).to(device)
    if initial is not None:
        initialise(model, initial, init_from)
        del initial  # the whole checkpoint, optimizer state included: not needed any more
    log.info("model: %s parameters, %s-style decoder, %s attention", f"{count_parameters(model):,}",
             cfg.model.decoder_style, cfg.model.attention.name)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    schedule = build_schedule(cfg.scheduler, optimizer)
    if resumed is not None:
        progress, history = restore(resumed, resume_from, model, optimizer, schedule, tokenizers, world)
    if world.is_main:
        _open_run_folder(run_dir, cfg, tokenizers)
    run = Run(cfg, run_dir, device, model, optimizer, schedule, data, world)
    if resumed is not None and world.is_main:
        carry_best_checkpoint(resume_from, run.best_path)
    if resumed is not None:
        run.progress, run.history = progress, history
        p = run.progress
        if run.ema is not None:
            run.ema.load(resumed["model"])  # from a run without EMA: starts at its weights
        if world.is_main:
            log.info("resumed from %s at step %d (epoch %d, %d batches into it)", resume_from, p.step,
                     p.epoch + 1, p.batches_done_in_epoch)
    finished = run.finished_because()
    if finished:
        log.info("nothing to train: the run already %s", finished)
        return run.summary()

    sampler = _batch_sampler(data.train_src_ids, data.train_tgt_ids, cfg)
    skipped_warning = _skipped_pairs_warning(sampler, cfg)
    if skipped_warning and world.is_main:
        log.warning(skipped_warning)
    left_out = sampler.skipped  # of the segmentation last said (a sampled one can be longer)
    long_validation = long_pairs_warning(run.valid, cfg.trainer.batch_tokens)
    if long_validation and world.is_main:
        log.warning(long_validation)
    per_epoch = updates_per_epoch(len(sampler), world, cfg.trainer.accumulate)
    total = min(run.max_steps, run.max_epochs * per_epoch)  # the run's last update: whichever bound comes first
    if sampling is None:
        schedule.plan(total)  # sampled epochs plan their own below: their batch counts differ from this one
    run.bar = tqdm(total=total, initial=run.progress.step, unit="step", dynamic_ncols=True, mininterval=1.0,
                   disable=not (cfg.trainer.progress and world.is_main))
    run.logger = TrainingLogger(run_dir, enabled=world.is_main)
    progress, done = run.progress, False
    try:
        with StopOnSignal() as stop, _console(run.bar):
            while not done and progress.epoch < run.max_epochs:
                if sampling is not None:
                    run.resegment(sampling, data)
                    sampler = _batch_sampler(run.train_src_ids, run.train_tgt_ids, cfg)
                    if sampler.skipped and sampler.skipped != left_out and world.is_main:
                        log.warning("epoch %d's sampled segmentation: %s", progress.epoch + 1,
                                    _skipped_pairs_warning(sampler, cfg))
                    left_out = sampler.skipped
                    # Mid-epoch the checkpoint holds this epoch's plan, unless its schedule made none.
                    if progress.batches_done_in_epoch == 0 or schedule.needs_plan:
                        schedule.plan(_planned_total(run, len(sampler), world, cfg.trainer.accumulate))
                sampler.set_epoch(progress.epoch)
                batches = list(sampler)
                for update in updates(batches, progress.batches_done_in_epoch, world, cfg.trainer.accumulate):
                    done = run.update(update)
                    # A signal may reach one rank only (or reach them at different steps): all stop together.
                    if world.any(stop.received is not None) and not done:
                        run.save()
                        raise TrainingStopped(stop.received or SIGTERM_ELSEWHERE, progress.step, progress.epoch,
                                              progress.batches_done_in_epoch, len(batches), run.last_path)
                    if done:
                        break
                else:  # the epoch ran to its end
                    progress.epoch += 1
                    progress.batches_done_in_epoch = 0
            run.bar.close()
            if not run.history or run.history[-1]["step"] != progress.step:
                run.validate(scheduled=False)  # the run ended between two validations: score the final model
            # A signal during the run's last update or validation: the run is complete, but the job was
            # asked to end, and the caller's exit status says so (130/143), as after any stop.
            stopped_by = (stop.received or SIGTERM_ELSEWHERE) if world.any(stop.received is not None) else None
    finally:
        run.bar.close()
        run.logger.close()
    summary = run.summary()
    if stopped_by is not None:
        summary["stopped_by"] = stopped_by  # not in summary.json: the run's results do not depend on it
    if world.is_main:
        log.info("done: %d steps, best validation %s, checkpoints in %s", progress.step,
                 metric_text(run.t.best_metric, metric_value(run.t.best_metric, progress.best_score)),
                 run.last_path.parent)
    return summary


def _console_handlers() -> list[logging.Handler]:
    """The handlers through which this module's records reach the terminal (Hydra's console handler)."""
    found, logger = [], log
    while logger is not None:
        found += [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                  and getattr(h, "stream", None) in (sys.stdout, sys.stderr)]
        logger = logger.parent if logger.propagate else None
    return found


def _console_shows_info() -> bool:
    return log.isEnabledFor(logging.INFO) and any(h.level <= logging.INFO for h in _console_handlers())


def _console(bar: tqdm):
    """While a progress bar is shown, console log lines are written above it instead of through it.
    Without a console handler (train() called from Python) there is nothing to redirect."""
    return contextlib.nullcontext() if bar.disable or not _console_handlers() else logging_redirect_tqdm()


def _planned_total(run: "Run", n_batches: int, world: World, accumulate: int) -> float:
    """The run's last update as seen in a sampled epoch of `n_batches`: the epochs after it are
    assumed as long as this one, so the estimate is exact by the last epoch."""
    p = run.progress
    epoch_start = p.step - updates_per_epoch(p.batches_done_in_epoch, world, accumulate)  # 0 done: p.step
    epochs_left = run.max_epochs - p.epoch  # this one included
    return min(run.max_steps, epoch_start + epochs_left * updates_per_epoch(n_batches, world, accumulate))


def _batch_sampler(src_ids, tgt_ids, cfg: DictConfig) -> TokenBatchSampler:
    """The training batches. A pair wider than trainer.batch_tokens on its own has no batch within the
    budget (one 20,000-word pair, with data.max_len=null, took 24 GB): it is left out of training."""
    sampler = TokenBatchSampler(id_lengths(src_ids) + 1, id_lengths(tgt_ids) + 1, cfg.trainer.batch_tokens,
                                shuffle=True, seed=cfg.seed, skip_over_budget=True)
    if sampler.skipped == len(src_ids):
        raise ConfigError(f"every training pair is {_over_budget(cfg)}; raise trainer.batch_tokens")
    return sampler


def _over_budget(cfg: DictConfig) -> str:
    return (f"longer than one batch of trainer.batch_tokens={cfg.trainer.batch_tokens} holds "
            f"({longest_side(cfg.trainer.batch_tokens)} subword tokens a side)")


def _skipped_pairs_warning(sampler: TokenBatchSampler, cfg: DictConfig) -> str | None:
    """The warning for the training pairs that `_batch_sampler` left out, if any."""
    if not sampler.skipped:
        return None
    return (f"left out {sampler.skipped:,} of {len(sampler.widths):,} training pairs {_over_budget(cfg)}; "
            "raise trainer.batch_tokens to train on them, or set data.max_len to drop long pairs "
            "when the data is prepared")


def _check_writable(run_dir: Path) -> None:
    """The run folder is written only after the checks and the data; whether it can be is known now."""
    problem = folder_write_problem(run_dir)
    if problem is not None:
        raise ConfigError(f"cannot write the run folder {run_dir}: {problem}")


def _open_run_folder(run_dir: Path, cfg: DictConfig, tokenizers: Tokenizers) -> None:
    """Writes the run's settings and SentencePiece models: the first write, once every check passed."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        tokenizers.save(run_dir)
    except OSError as exc:
        raise ConfigError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}") from None
    removed = remove_stale_temporaries(run_dir / "checkpoints")
    if removed:
        log.info("removed %d unfinished checkpoint file(s) left by a run that was killed", len(removed))


class Run:
    """A run's state between updates, and the things done with it: update, validate, save."""

    def __init__(self, cfg: DictConfig, run_dir: Path, device: torch.device, model, optimizer, schedule,
                 data: PreparedData, world: World = ONE_PROCESS):
        self.cfg, self.t, self.device, self.world = cfg, cfg.trainer, device, world
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        # `net` is what training calls: the model itself, or its DDP wrapper that all-reduces gradients.
        self.net = model
        if world.distributed:
            self.net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        self.train_src_ids, self.train_tgt_ids = data.train_src_ids, data.train_tgt_ids
        self.tokenizers = data.tokenizers
        n = self.t.valid_max_sentences  # None: all
        self.valid = ValidationData(data.valid_src_ids[:n], data.valid_tgt_ids[:n], data.valid_tgt_text[:n])
        self.last_path = Path(run_dir) / "checkpoints" / "last.pt"
        self.best_path = self.last_path.with_name("best.pt")
        self.max_steps = self.t.max_steps or math.inf
        self.max_epochs = self.t.max_epochs or math.inf
        self.progress, self.history = Progress(), []
        # trainer.ema_decay: validation and the saved "model" use an average of the weights (nmt.training.ema).
        self.ema = WeightAverage(model, self.t.ema_decay) if self.t.get("ema_decay") else None
        # trainer.risk_weight: minimum risk training on the model's own beam candidates (nmt.training.risk).
        self.risk = (RiskObjective(self.t.risk_weight, self.t.risk_candidates, self.tokenizers.tgt,
                                   max_len_b=self.t.valid_max_len_b) if self.t.get("risk_weight") else None)
        self.bar, self.logger = None, None
        self.tokens_since, self.time_since = 0, time.perf_counter()

    def resegment(self, sampling: SubwordSampling, data: PreparedData) -> None:
        """This epoch's sampled segmentation of the training data (tokenizer.subword_alpha)."""
        start = time.perf_counter()
        sampled, p, max_len = None, self.progress, self.cfg.data.get("max_len")
        if self.world.is_main:
            path = self.last_path.with_name(EPOCH_SAMPLE)
            key = {"seed": self.cfg.seed, "epoch": p.epoch, "alpha": sampling.alpha, "nbest": sampling.nbest,
                   "max_len": max_len, "pairs": len(data.train_src_ids)}
            if p.batches_done_in_epoch > 0:  # resumed inside the epoch: finish it on the sample it began with
                sampled = load_epoch_sample(path, key)
            if sampled is None:
                sampled = sampling.resegment(self.tokenizers, data.train_src_ids, data.train_tgt_ids, self.cfg.seed,
                                             p.epoch, max_len=max_len)
                save_epoch_sample(path, key, *sampled)
        # Every rank trains on rank 0's sample: SentencePiece's draws are repeatable within a process
        # but not across processes, and the ranks must cut the epoch into the same batches.
        self.train_src_ids, self.train_tgt_ids = self.world.from_main(sampled)
        grown = len(self.train_tgt_ids.flat) / len(data.train_tgt_ids.flat)
        log.info("epoch %d: sampled a segmentation in %.1f s (target subwords x%.2f)", self.progress.epoch + 1,
                 time.perf_counter() - start, grown)

    def update(self, update: Update) -> bool:
        """Trains on this rank's batches of one update, then logs, validates and saves when due;
        True when the run is done."""
        p, t = self.progress, self.t
        src, tgt = self.train_src_ids, self.train_tgt_ids
        batches = [collate([src[i] for i in b], [tgt[i] for i in b], b) for b in update.batches]
        # Target tokens of every rank's batches (collate adds EOS to each target), known to all ranks.
        total_tokens = sum(len(tgt[i]) + 1 for b in update.group for i in b)
        total_sentences = sum(len(b) for b in update.group)
        size = f"{len(batches[0])} sentences x {batches[0].tgt_in.size(1)} tokens"
        where = f"in training step {p.step + 1} (a batch of {size})"
        advice = f"lower trainer.batch_tokens (now {t.batch_tokens})"
        with out_of_memory_advice(where, advice, self.last_path):
            batches = [batch.to(self.device, non_blocking=True) for batch in batches]
            loss, grad_norm = train_step(self.net.train(), self.optimizer, batches, t, self.device,
                                         update.weights, total_tokens, self.world, self.risk, total_sentences)
        p.batches_done_in_epoch = update.end
        good = check_finite(loss, grad_norm, p.nonfinite_in_a_row, t.max_nonfinite_steps, p.step + 1,
                            self.last_path)
        p.nonfinite_in_a_row = 0 if good else p.nonfinite_in_a_row + 1
        if not good:
            return False
        if self.ema is not None:
            self.ema.update(self.model, p.step)
        lr = self.schedule.lr()  # this update's rate; after step() the schedule gives the next one's
        self.schedule.step()
        p.step += 1
        self.bar.update(1)
        self.tokens_since += total_tokens
        if p.step % t.log_every == 0 or p.step == 1:
            self._log_training(loss, grad_norm, lr)
        stop_early, paused = False, time.perf_counter()
        if p.step % t.valid_every == 0:
            stop_early = self.validate(scheduled=True)
        elif t.save_every and p.step % t.save_every == 0:
            self.save()
        self.time_since += time.perf_counter() - paused  # tokens/s is of training: validating and saving left out
        return stop_early or p.step >= self.max_steps

    def _log_training(self, loss: float, grad_norm: float, lr: float) -> None:
        tok_s = self.tokens_since / max(time.perf_counter() - self.time_since, 1e-9)
        self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", epoch=self.progress.epoch + 1)
        self.logger.scalars(self.progress.step, {
            # No train/ppl: the loss is label-smoothed, and exp of it would overstate the perplexity
            # that valid/ppl reports (exp of the plain NLL).
            "train/loss": loss, "train/lr": lr,
            "train/grad_norm": grad_norm, "train/tokens_per_s": tok_s,
            # The last batch's expected cost (1 - sentence BLEU / 100) under minimum risk training.
            **({"train/expected_cost": self.risk.expected_cost} if self.risk is not None else {})})
        self.tokens_since, self.time_since = 0, time.perf_counter()

    def validate(self, scheduled: bool) -> bool:
        """Validates, logs, saves last.pt (and best.pt on a new best); True to stop early.

        Only `scheduled` validations (every trainer.valid_every updates) steer training through the
        schedule and early stopping, so that an extra validation where a run happens to end leaves
        nothing behind that would make a resumed run differ from one trained in one go.
        """
        p, t = self.progress, self.t
        advice = (f"lower trainer.valid_batch_sentences (now {t.valid_batch_sentences}) or "
                  f"trainer.batch_tokens (validation batches hold up to 2 x {t.batch_tokens} tokens)")
        where = f"while validating at step {p.step}"
        # Validation must not move the random streams that training draws from.
        # Rank 0 validates alone (the same BLEU as one process) and sends the figures to the others,
        # so that the schedule and early stopping take the same decision on every rank.
        result = None
        if self.world.is_main:
            with rng_preserved(), out_of_memory_advice(where, advice, self.last_path), self._scored_weights():
                result = validate(self.model, self.valid, self.tokenizers, batch_tokens=t.batch_tokens * 2,
                                  batch_sentences=t.valid_batch_sentences, max_len_b=t.valid_max_len_b,
                                  plot_sentences=t.plot_sentences, device=self.device, beam_size=t.valid_beam_size)
        loss, ppl, bleu, chrf = self.world.from_main(result and (result.loss, result.ppl, result.bleu, result.chrf))
        metric = t.best_metric
        score = metric_score(metric, loss=loss, bleu=bleu, chrf=chrf)
        improved = score > p.best_score
        p.best_score = max(p.best_score, score)
        stop = self._steer(score) if scheduled else False
        lr = self.schedule.lr()
        # Between epochs (the final validation after the last one) the epoch counter has moved on.
        epoch = p.epoch + 1 if p.batches_done_in_epoch else max(p.epoch, 1)
        self.history.append({"step": p.step, "epoch": epoch, "valid_loss": loss,
                             "valid_ppl": ppl, "valid_bleu": bleu, "valid_chrf": chrf, "lr": lr})
        if self.world.is_main:
            self.logger.validation(p.step, result)
            best = {metric: " (best)" if improved else ""}
            chrf_text = f" | chrF {chrf:.2f}{best['chrf']}" if metric == "chrf" else ""
            line = (f"step {p.step:>6} | epoch {epoch} | valid loss {loss:.3f}{best.get('loss', '')} | "
                    f"ppl {ppl:.2f} | BLEU {bleu:.2f}{best.get('bleu', '')}{chrf_text} | lr {lr:.2e}")
            log.info(line)  # to train.log and the console, above a progress bar (_console)
            if not _console_shows_info():  # train() called without logging set up, e.g. from Python
                self.bar.write(line)
        if self.world.is_main and t.keep_best_checkpoints:
            p.kept = keep_if_among_best(p.kept, score, p.step, t.keep_best_checkpoints, self.last_path.parent,
                                        scored_state(self.model, self.ema), self.cfg, self.tokenizers)
        self.save(best=improved)
        if stop and self.world.is_main:
            log.info("early stopping: no better %s in %d validations", METRIC_NAMES[metric],
                     t.early_stopping_patience)
        return stop

    def _scored_weights(self):
        """The weights that validation scores: the EMA's when there is one."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    def _steer(self, score: float) -> bool:
        """Feeds a scheduled validation's score to the schedule and early stopping; True to stop."""
        p, patience = self.progress, self.t.early_stopping_patience
        self.schedule.on_validation(score)
        if score > p.stopping_best:
            p.stopping_best, p.validations_without_improvement = score, 0
        else:
            p.validations_without_improvement += 1
        return patience is not None and p.validations_without_improvement >= patience

    def save(self, best: bool = False) -> None:
        """Rank 0 writes the checkpoint(s); every rank must call this (it gathers their RNG states)."""
        rng_per_rank = self.world.gather(capture_rng_state()) if self.world.distributed else None
        if not self.world.is_main:
            return
        state = training_state(self.model, self.optimizer, self.schedule, self.progress, self.history,
                               self.cfg, self.tokenizers, rng_per_rank, self.ema)
        # best.pt first: a crash between the two writes leaves last.pt before the new best, so the
        # resumed run repeats that validation and writes best.pt again.
        if best:
            save_checkpoint(state, self.best_path)
        save_checkpoint(state, self.last_path)

    def finished_because(self) -> str | None:
        """Why a (resumed) run has nothing left to do, or None."""
        p, t = self.progress, self.t
        if p.step >= self.max_steps:
            return f"reached trainer.max_steps={t.max_steps}; raise it to train further"
        if p.epoch >= self.max_epochs:
            return f"reached trainer.max_epochs={t.max_epochs}; raise it to train further"
        patience = t.early_stopping_patience
        if patience is not None and p.validations_without_improvement >= patience:
            return (f"stopped early after {patience} validations without a better "
                    f"{METRIC_NAMES[t.best_metric]}; raise "
                    "trainer.early_stopping_patience to train further")
        return None

    def summary(self) -> dict:
        p, run_dir = self.progress, self.last_path.parent.parent
        metric = self.t.best_metric
        summary = {"steps": p.step, "epochs": p.epoch, "parameters": count_parameters(self.model),
                   "best_bleu": max((h["valid_bleu"] for h in self.history), default=-math.inf),
                   "best_metric": metric, "best_score": metric_value(metric, p.best_score),
                   "best_checkpoint": str(self.best_path) if self.best_path.exists() else None,
                   "last_checkpoint": str(self.last_path),
                   "history": self.history}
        if self.world.is_main:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
