"""Starting a new run from a trained model's weights: `init_from=CHECKPOINT`, for fine-tuning.

`resume` continues a run exactly; `init_from` starts another one, in its own folder, on any data,
with a fresh optimizer, schedule, counters and validation history, from the weights and the
SentencePiece models of a checkpoint written by nmt-train or nmt-average (as Joey NMT's
`load_model` with its resets, OpenNMT-py's `train_from` with `reset_optim`, fairseq's
`--restore-file` with `--reset-optimizer`). The vocabulary is part of the weights, so the new data
is encoded with the checkpoint's SentencePiece models, and the model settings must be its own but
for dropout, which only acts in training.
"""

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.errors import CheckpointError, ConfigError, first_line
from nmt.training.checkpoint import load_checkpoint
from nmt.training.resume import config_changes

log = logging.getLogger(__name__)

# Model settings that only act in training: a fine-tuning run may regularise differently.
TRAINING_ONLY_MODEL_SETTINGS = ("model.dropout", "model.word_dropout")
# The tokenizer settings that make the SentencePiece models: they must be the checkpoint's, so that
# the run's config.yaml describes the models it trains with. Sampling options may change.
TOKENIZER_SETTINGS = ("type", "joint", "vocab_size")


def check_init_from(init_from, resume=False) -> None:
    """The option's own checks, cheap enough for before the run folder exists. A run that resumes
    needs the file no more (its checkpoints hold the SentencePiece models)."""
    if init_from is None:
        return
    if not (isinstance(init_from, str) and init_from.strip()):
        raise ConfigError(f"init_from must be null or a checkpoint path; got {init_from!r}")
    if resume is False and not Path(init_from).expanduser().is_file():
        raise ConfigError(f"init_from={init_from}: no such checkpoint file")


def load_initial(path: str | Path, cfg: DictConfig) -> dict:
    """Loads checkpoint `path` and checks that the run described by `cfg` can start from it."""
    path = Path(path).expanduser()
    state = load_checkpoint(path)
    now = OmegaConf.to_container(cfg, resolve=True)
    saved = state["config"]
    changed = [text for key, text in config_changes(saved.get("model", {}), now["model"], "model.")
               if key not in TRAINING_ONLY_MODEL_SETTINGS]
    if changed:
        raise CheckpointError(f"init_from={path} holds a different model ({'; '.join(changed[:3])}): "
                              "a fine-tuning run keeps the model, so give the settings it was trained with")
    saved_tokenizer = saved.get("tokenizer", {})
    for key in TOKENIZER_SETTINGS:
        if key in saved_tokenizer and saved_tokenizer[key] != now["tokenizer"].get(key):
            raise ConfigError(f"tokenizer.{key}={now['tokenizer'].get(key)!r}, but init_from={path} brings "
                              f"SentencePiece models made with {saved_tokenizer[key]!r}: give that value")
    return state


def initialise(model, state: dict, path: str | Path) -> None:
    """Puts the checkpoint's weights (for an EMA run, the averaged ones it validated) into `model`."""
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"init_from={path} does not fit this model: {first_line(exc)}") from None
    log.info("initialised from %s: its weights and SentencePiece models; optimizer, schedule and "
             "counters start afresh", path)
