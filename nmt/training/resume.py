"""Continuing a run exactly where it stopped.

A checkpoint carries everything the next update depends on: weights, optimizer and schedule state,
the counters in `Progress` (step, epoch, position inside the epoch, early stopping), the RNG states
and the validation history. Batches are drawn from a sampler seeded by (seed, epoch), so skipping
the batches already done in the epoch puts the data stream back where it was. A run resumed from any
checkpoint therefore ends with the same parameters, bit for bit, as one trained in one go.
"""

import logging
import math
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from nmt.data.tokenizer import Tokenizers
from nmt.errors import CheckpointError, ConfigError, first_line
from nmt.files import atomic_write, same_file
from nmt.training.checkpoint import capture_rng_state, direction, load_checkpoint, restore_rng_state
from nmt.training.ema import scored_state

log = logging.getLogger(__name__)

TRAINING_KEYS = ("optimizer", "schedule", "progress", "rng")
# trainer.* options added after runs were saved, with the value those runs had in effect.
ADDED_TRAINER_OPTIONS = {"best_metric": "bleu", "valid_beam_size": 1}
# Options removed after runs were saved; those runs' values changed nothing.
RETIRED_OPTIONS = ("data.test_splits",)
# Options a resumed run may change without changing its result (bounds, speed, paths, display).
FREE_TO_CHANGE = ("resume", "device", "name", "trainer.max_steps", "trainer.max_epochs", "trainer.progress",
                  "trainer.num_threads", "trainer.compile", "trainer.keep_best_checkpoints", "trainer.save_every",
                  "trainer.log_every", "data.root", "data.cache", "data.cache_dir", "data.url")


@dataclass
class Progress:
    """Counters that a resumed run must continue from."""

    step: int = 0                    # updates done (skipped NaN/Inf updates do not count)
    epoch: int = 0                   # epochs completed
    batches_done_in_epoch: int = 0   # batches of the current epoch already consumed
    # Scores of trainer.best_metric, higher is better (-loss for loss): nmt.training.validation.metric_score.
    best_score: float = -math.inf     # best score of any validation: decides best.pt
    stopping_best: float = -math.inf  # best score of the scheduled validations: decides early stopping
    validations_without_improvement: int = 0
    nonfinite_in_a_row: int = 0
    kept: list = field(default_factory=list)  # [score, step] of the step-<S>.pt files kept (nmt.training.kept)


def last_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.pt"


def checkpoint_to_resume(resume, run_dir: Path, folder_option: str = "hydra.run.dir") -> Path | None:
    """The checkpoint `resume` points at, or None to start afresh; `folder_option` is the option that
    chose run_dir, which the messages name (a sweep's jobs have hydra.sweep.dir).

    resume=false refuses a run folder that already holds a checkpoint, so that re-running a command
    never overwrites a run; true needs `<run_dir>/checkpoints/last.pt`; auto takes it when present
    (for jobs that are restarted with the same command); anything else is a checkpoint path.
    """
    last = last_checkpoint(run_dir)
    if resume is False or resume is None:
        if last.exists():
            raise ConfigError(f"{run_dir} already holds a run ({last}); add resume=true to continue it, "
                              f"or choose another {folder_option}")
        return None
    if resume is True:
        if not last.is_file():
            raise CheckpointError(f"nothing to resume: {last} does not exist; give {folder_option} the folder "
                                  "of the run to continue, or resume=PATH of a checkpoint")
        return last
    if resume == "auto":
        return last if last.is_file() else None
    path = Path(str(resume)).expanduser()
    if not path.is_file():  # e.g. resume=yes: say what resume takes, not only that no such file exists
        raise CheckpointError(f"resume={resume}: {'a folder' if path.is_dir() else 'no such file'}; resume takes "
                              "true, false, auto or the path of a checkpoint file")
    if last.exists() and path.resolve().parent != last.parent.resolve():
        # Continuing another run here would replace this run's last.pt, and leave its best.pt beside it
        raise ConfigError(f"{run_dir} already holds a run ({last}); resume={resume} continues another run: "
                          f"choose another {folder_option} for it (or resume=true to continue this one)")
    return path


def carry_best_checkpoint(resume_from: Path, best: Path) -> None:
    """A run continued in a new folder (resume=PATH) takes its best.pt along from PATH's folder: the
    best score it goes on from is that checkpoint's, and a later validation replaces it only when it
    beats that score, so the new folder would otherwise have no best.pt at all."""
    source = resume_from.with_name("best.pt")
    if best.exists() or not source.is_file() or source.resolve() == best.resolve():
        return
    best.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as original, atomic_write(best) as copy:
        shutil.copyfileobj(original, copy)
    log.info("copied the best checkpoint of the run it continues, %s, to %s", source, best)


def training_state(model, optimizer, schedule, progress: Progress, history: list[dict], cfg: DictConfig,
                   tokenizers: Tokenizers, rng_per_rank: list[dict] | None = None, ema=None) -> dict:
    """The checkpoint contents: tensors and plain data only. Under DDP `rng_per_rank` holds every
    rank's RNG states (their dropout masks differ), and "rng" is rank 0's. With an `ema`
    (nmt.training.ema.WeightAverage) "model" is the average and "training_weights" the weights."""
    state = {"model": scored_state(model, ema), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "progress": asdict(progress), "history": list(history),
             "rng": rng_per_rank[0] if rng_per_rank else capture_rng_state(),
             "config": OmegaConf.to_container(cfg, resolve=True), "tokenizers": tokenizers.to_dict()}
    if rng_per_rank:
        state["rng_per_rank"] = rng_per_rank
    if ema is not None:
        state["training_weights"] = model.state_dict()
    return state


def load_for_resume(path: Path, cfg: DictConfig) -> dict:
    """Loads checkpoint `path` and checks that `cfg` can continue it, before anything is written.

    A checkpoint without training state or of another model is refused; other changed settings
    are allowed with a warning.
    """
    state = load_checkpoint(path)
    missing = [key for key in TRAINING_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} holds no training state (no {', '.join(missing)}), so training "
                              "cannot resume from it")
    now = OmegaConf.to_container(cfg, resolve=True)
    # A checkpoint from before an option was added ran with what is now its default.
    saved_trainer = {**ADDED_TRAINER_OPTIONS, **state["config"].get("trainer", {})}
    saved_metric = saved_trainer["best_metric"]
    if now["trainer"].get("best_metric", "bleu") != saved_metric:
        raise ConfigError(f"trainer.best_metric={now['trainer']['best_metric']}, but the run in {path} chose its "
                          f"best checkpoints by {saved_metric}: resume with trainer.best_metric={saved_metric}, "
                          "or start a new run")
    if direction(now) != direction(state["config"]):  # the same model sizes, another task: no continuation
        raise CheckpointError(f"checkpoint {path} translates {direction(state['config'])}, but this run is set to "
                              f"{direction(now)} (data.src_lang, data.tgt_lang): {_settings_hint(path)}, or start a "
                              f"new run for {direction(now)}")
    _check_init_from(state["config"].get("init_from"), now.get("init_from"), path)
    changed = [(key, text) for key, text in config_changes({**state["config"], "trainer": saved_trainer}, now)
               if key != "init_from"  # checked above: a continuation needs the file no more
               and key not in RETIRED_OPTIONS]
    model_changes = [text for key, text in changed if key.startswith("model.")]
    if model_changes:
        raise CheckpointError(f"checkpoint {path} holds a different model ({'; '.join(model_changes[:3])}); "
                              f"{_settings_hint(path)}")
    others = [text for key, text in changed if key not in FREE_TO_CHANGE]
    if others:
        log.warning("resuming with changed settings (%s): the result will differ from a run trained in "
                    "one go", "; ".join(others))
    return state


def _check_init_from(started_from, given, path: Path) -> None:
    """init_from names the checkpoint a new run starts from. Given while resuming, it is the same
    command restarted only when the run started from that file; any other file, or a run that started
    afresh, means the user meant a new run, which a continuation would silently not be."""
    if not given or (started_from and same_file(started_from, given)):
        return
    origin = f"from init_from={started_from}" if started_from else "afresh"
    raise ConfigError(f"init_from={given} starts a new run, but resume continues the run of {path}, which started "
                      f"{origin}: drop init_from to continue that run, or start the new one in another folder")


def restore(state: dict, path: Path, model, optimizer, schedule, tokenizers: Tokenizers,
            world=None) -> tuple[Progress, list[dict]]:
    """Puts a checkpoint's training state (from `load_for_resume`) into the given objects and the
    RNGs; returns the progress counters and the validation history so far.

    Rank r of a DDP run takes the RNG states rank r saved when the number of ranks is unchanged;
    otherwise rank 0's states, offset per rank (the run then continues, but not bit for bit)."""
    if state["tokenizers"] != tokenizers.to_dict():
        raise CheckpointError(f"checkpoint {path} was trained with other SentencePiece models than the "
                              f"current data and tokenizer settings give; {_settings_hint(path)}")
    try:
        model.load_state_dict(state.get("training_weights", state["model"]))  # not the EMA (nmt.training.ema)
        _load_optimizer_keeping_settings(optimizer, state["optimizer"])
        schedule.load_state_dict(state["schedule"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model and optimizer: {first_line(exc)}; "
                              f"{_settings_hint(path)}") from None
    known = {f.name for f in fields(Progress)}
    saved = dict(state["progress"])
    if "best_bleu" in saved:  # checkpoints from before trainer.best_metric, which always chose by BLEU
        saved.setdefault("best_score", saved.pop("best_bleu"))
    progress = Progress(**{k: v for k, v in saved.items() if k in known})
    rank, size = (world.rank, world.size) if world is not None else (0, 1)
    per_rank = state.get("rng_per_rank") or [state["rng"]]
    if len(per_rank) == size:
        restore_rng_state(per_rank[rank])
    else:
        log.warning("the checkpoint was saved by %d process(es), this run has %d: random streams (dropout) "
                    "are re-seeded per rank, so the result differs from an uninterrupted run", len(per_rank), size)
        restore_rng_state(state["rng"])
        if rank:
            torch.manual_seed(int(torch.randint(2**31, ())) + rank)
    return progress, list(state.get("history", []))


def _load_optimizer_keeping_settings(optimizer, saved: dict) -> None:
    """Restores the moment estimates and step counts only. torch's load_state_dict also puts back every
    saved hyperparameter (betas, weight decay, AdamW's decoupled decay, ...), which would silently undo
    a change the warning says is in effect: the optimizer built from the config keeps its own (the
    rate is then set by the schedule)."""
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, kept in zip(optimizer.param_groups, settings, strict=True):
        group.update(kept)


def _settings_hint(path: Path) -> str:
    saved = Path(path).parent.parent / "config.yaml"
    where = f"see {saved}" if saved.is_file() else "they are in the checkpoint's config"
    return f"resume with the settings of the original run ({where})"


def config_changes(saved: dict, now: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, description) of every option whose value differs between two config dicts."""
    changes = []
    for key in sorted(set(saved) | set(now), key=str):
        a, b = saved.get(key, "<unset>"), now.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append((f"{prefix}{key}", f"{prefix}{key}: {a!r} in the checkpoint, {b!r} now"))
    return changes
