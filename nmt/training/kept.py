"""The N best validation checkpoints of a run, kept for checkpoint averaging (`nmt-average`).

With `trainer.keep_best_checkpoints=N`, every validation whose score (of trainer.best_metric, BLEU by
default) is among the N best so far writes `checkpoints/step-<S>.pt`; the one it pushes out of the N
is deleted afterwards, so a crash between the two leaves one file too many, never one too few. Each
file holds the weights, the config and the tokenizers, not the optimizer, so it is a third of
`last.pt`'s size and loads anywhere a checkpoint does (`nmt-evaluate`, `nmt-translate`).

Which files are kept is part of the run's progress (a list of [score, step] pairs), so a resumed run
goes on pruning the same set.
"""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.data.tokenizer import Tokenizers
from nmt.training.checkpoint import save_checkpoint

KEPT_PATTERN = "step-*.pt"


def kept_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step}.pt"


def kept_step(path: Path) -> int:
    """The update count in a kept checkpoint's name: step-<S>.pt -> S."""
    return int(Path(path).stem.removeprefix("step-"))


def kept_checkpoints(folder: Path) -> list[Path]:
    """The step-<S>.pt files in `folder`, oldest first. Only names kept_path() writes count: a user's
    step-old.pt does not."""
    named = [p for p in Path(folder).glob(KEPT_PATTERN) if p.stem.removeprefix("step-").isdigit()]
    return sorted(named, key=kept_step)


def keep_if_among_best(kept: list[list], score: float, step: int, limit: int, folder: Path,
                       weights: dict, cfg: DictConfig, tokenizers: Tokenizers) -> list[list]:
    """Saves `weights` (the state dict that was validated) as step-<step>.pt when `score` (higher is
    better) ranks among the `limit` best of `kept` plus this one; returns the new list of [score, step]
    pairs, best first (ties: the later step first)."""
    ranked = sorted([*kept, [score, step]], key=lambda pair: (pair[0], pair[1]), reverse=True)
    new, dropped = ranked[:limit], ranked[limit:]
    if [score, step] in new:
        state = {"model": weights, "config": OmegaConf.to_container(cfg, resolve=True),
                 "tokenizers": tokenizers.to_dict(), "step": step, "valid_score": score}
        save_checkpoint(state, kept_path(folder, step))
    for _, old_step in dropped:
        if old_step != step:
            kept_path(folder, old_step).unlink(missing_ok=True)
    return new
