"""Checks of a training run's options at start-up, before any data is read or a run folder exists.

Hydra rejects unknown keys; this rejects known keys with values of the wrong kind
(`trainer.max_steps=abc`, `optimizer.lr=-1`, `scheduler.factor=abc`), with one line naming the
option, instead of a TypeError deep in the loop or, worse, hours later at the first decay.
"""

import math
import re
from collections.abc import Mapping, Sequence

from nmt.data.pipeline import worker_count
from nmt.data.subword_sampling import SubwordSampling
from nmt.data.tokenizer import MODEL_TYPES, SPECIAL_IDS
from nmt.errors import ConfigError
from nmt.models.seq2seq import build_model
from nmt.training.initial import check_init_from
from nmt.training.optim import OPTIMIZERS, SCHEDULES
from nmt.training.runtime import resolve_device
from nmt.values import invalid, is_int, is_number

POSITIVE_INT = ("batch_tokens", "accumulate", "valid_every", "log_every", "valid_batch_sentences", "max_nonfinite_steps",
                "valid_beam_size")
POSITIVE_INT_OR_NULL = ("max_steps", "max_epochs", "save_every", "valid_max_sentences", "num_threads",
                        "early_stopping_patience")
NON_NEGATIVE_INT = ("valid_max_len_b", "plot_sentences", "keep_best_checkpoints")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_SETTINGS = ("auto", True, False)
BEST_METRICS = ("bleu", "chrf", "loss")


def check_trainer_options(trainer: Mapping, resume=False) -> None:
    """Raises a ConfigError naming the first `trainer.*` option (or `resume`) with an invalid value."""
    for key in POSITIVE_INT:
        _need("trainer", trainer, key, _positive_int, "a positive integer")
    for key in POSITIVE_INT_OR_NULL:
        _need("trainer", trainer, key, lambda value: value is None or _positive_int(value), "null or a positive integer")
    for key in NON_NEGATIVE_INT:
        _need("trainer", trainer, key, _non_negative_int, "an integer >= 0")
    _need("trainer", trainer, "label_smoothing", _fraction, "a number in [0, 1)")
    _need("trainer", trainer, "risk_weight", lambda w: w is None or (is_number(w) and 0 <= w <= 1),
          "a number in [0, 1] (0: no minimum risk training)")
    _need("trainer", trainer, "risk_candidates", lambda k: k is None or (_positive_int(k) and k >= 2),
          "an integer >= 2 (candidates per source for minimum risk training)")
    _need("trainer", trainer, "rdrop_alpha", lambda alpha: alpha is None or (is_number(alpha) and alpha >= 0),
          "a number >= 0 (0: no R-Drop)")
    _need("trainer", trainer, "clip_grad_norm", lambda clip: clip is None or (is_number(clip) and clip >= 0),
          "null or a number >= 0 (0 or null: no clipping)")
    _need("trainer", trainer, "ema_decay", lambda decay: decay is None or (is_number(decay) and 0 < decay < 1),
          "null (no weight averaging) or a number in (0, 1), e.g. 0.999")
    _need("trainer", trainer, "precision", lambda precision: precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}")
    if trainer.get("compile", False) not in COMPILE_SETTINGS:  # absent: false
        raise invalid("trainer.compile", "auto, true or false", trainer.get("compile"))
    _need("trainer", trainer, "progress", lambda progress: isinstance(progress, bool), "true or false")
    if trainer.get("best_metric", "bleu") not in BEST_METRICS:  # absent (configs before it): bleu
        raise invalid("trainer.best_metric", f"one of {', '.join(BEST_METRICS)}", trainer.get("best_metric"))
    if trainer.get("max_steps") is None and trainer.get("max_epochs") is None:
        raise ConfigError("set trainer.max_steps or trainer.max_epochs: a run needs a bound")
    if not (isinstance(resume, bool) or (isinstance(resume, str) and resume.strip())):
        raise ConfigError(f"resume must be true, false, auto or a checkpoint path; got {resume!r}")


def check_run_options(cfg: Mapping) -> None:
    """Raises a ConfigError naming the first option of a training run with an invalid value.

    Run by nmt-train before Hydra creates the run folder, and again by `train` for callers that
    bypass the command line; the cost is a throwaway model with a tiny vocabulary.
    """
    check_trainer_options(cfg["trainer"], cfg["resume"])
    check_tokenizer_options(cfg["tokenizer"])
    check_model_options(cfg["model"], cfg["tokenizer"]["joint"])
    check_optimizer_options(cfg["optimizer"])
    check_scheduler_options(cfg["scheduler"])
    check_data_options(cfg["data"])
    check_init_from(cfg.get("init_from"), cfg["resume"])
    seed = cfg.get("seed")
    if not (is_int(seed) and 0 <= seed < 2**32):  # numpy and SentencePiece take unsigned 32-bit seeds
        raise ConfigError(f"seed must be an integer from 0 to 4294967295; got {seed!r}")
    resolve_device(cfg["device"])


def _need(section: str, options: Mapping, key: str, valid, wanted: str) -> None:
    if not valid(options.get(key)):
        raise invalid(f"{section}.{key}", wanted, options.get(key))


def _positive_int(value) -> bool:
    return is_int(value) and value > 0


def _non_negative_int(value) -> bool:
    return is_int(value) and value >= 0


def _fraction(value) -> bool:
    return is_number(value) and 0 <= value < 1


def _non_negative(value) -> bool:
    return is_number(value) and 0 <= value < math.inf


MODEL_SIZES = ("emb_size", "enc_hidden", "enc_layers", "dec_hidden", "dec_layers")
MODEL_SWITCHES = ("bidirectional", "input_feeding", "tie_embeddings", "tie_output")


def check_model_options(model: Mapping, joint_vocabulary: bool) -> None:
    check_model_values(model)
    # The builders know the rest (rnn_type, decoder_style, the attention variant and its options,
    # tied embeddings needing one vocabulary): a model with a tiny vocabulary checks them in a
    # fraction of a second, before the data takes minutes.
    try:
        build_model(model, 8, 8, shared_vocab=joint_vocabulary)
    except (RuntimeError, MemoryError) as exc:  # torch's CPU allocator raises a RuntimeError
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise
        asked = re.search(r"allocate (\d+) bytes", str(exc))
        size = f" ({int(asked.group(1)) / 2**30:,.1f} GiB for one weight)" if asked else ""
        raise ConfigError(f"a model of these sizes does not fit in memory{size}; lower model.emb_size, "
                          "model.enc_hidden or model.dec_hidden") from None


def check_model_values(model: Mapping) -> None:
    """The model options that a plain value check can judge; also names the option of a checkpoint's
    config edited by hand, which the translator builds the model from."""
    for key in MODEL_SIZES:
        _need("model", model, key, _positive_int, "a positive integer")
    for key in MODEL_SWITCHES:
        _need("model", model, key, lambda value: isinstance(value, bool), "true or false")
    for key in ("dropout", "word_dropout"):
        _need("model", model, key, _fraction, "a number in [0, 1)")
    heads = model["attention"].get("num_heads")
    if _positive_int(heads) and model["dec_hidden"] % heads:  # the decoder state is split into heads
        raise ConfigError(f"model.attention.num_heads={heads} must divide model.dec_hidden={model['dec_hidden']}")


def check_optimizer_options(optimizer: Mapping) -> None:
    _need("optimizer", optimizer, "name", lambda name: name in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}")
    _need("optimizer", optimizer, "lr", lambda lr: _non_negative(lr) and lr > 0, "a number > 0, e.g. 5e-4")
    _need("optimizer", optimizer, "betas",
          lambda betas: isinstance(betas, Sequence) and not isinstance(betas, str) and len(betas) == 2
          and all(_fraction(beta) for beta in betas), "two numbers in [0, 1), e.g. [0.9,0.999]")
    _need("optimizer", optimizer, "weight_decay", _non_negative, "a number >= 0")


# Each schedule has some of these options (configs/scheduler/*.yaml); those it has are checked.
SCHEDULER_OPTIONS = {
    "warmup_steps": (_non_negative_int, "an integer >= 0"),
    "factor": (lambda factor: is_number(factor) and 0 < factor < 1, "a number in (0, 1), e.g. 0.7"),
    "patience": (_non_negative_int, "an integer >= 0"),
    "min_lr": (_non_negative, "a number >= 0"),
    "total_steps": (lambda total: total is None or _positive_int(total), "null or a positive integer"),
}


def check_scheduler_options(scheduler: Mapping) -> None:
    _need("scheduler", scheduler, "name", lambda name: name in SCHEDULES, f"one of {', '.join(SCHEDULES)}")
    for key, (valid, wanted) in SCHEDULER_OPTIONS.items():
        if key in scheduler:
            _need("scheduler", scheduler, key, valid, wanted)


def check_tokenizer_options(tokenizer: Mapping) -> None:
    _need("tokenizer", tokenizer, "type", lambda kind: kind in MODEL_TYPES, f"one of {', '.join(MODEL_TYPES)}")
    _need("tokenizer", tokenizer, "joint", lambda joint: isinstance(joint, bool), "true or false")
    _need("tokenizer", tokenizer, "vocab_size", lambda size: is_int(size) and size > len(SPECIAL_IDS) + 1,
          "an integer above 4")
    # SentencePiece refuses a coverage below 0.98 (an assertion deep in its trainer: a traceback)
    _need("tokenizer", tokenizer, "character_coverage", lambda share: is_number(share) and 0.98 <= share <= 1,
          "a number from 0.98 to 1 (SentencePiece's range)")
    _need("tokenizer", tokenizer, "sample_size", lambda n: n is None or _non_negative_int(n),
          "0 (all pairs) or a positive integer")
    SubwordSampling.from_config(tokenizer)  # subword_alpha, subword_nbest


def check_data_options(data: Mapping) -> None:
    """The data switches and worker count, checked before the data is read: with a cached corpus they
    would otherwise never be looked at (`data.cache=off` would silently mean on, num_workers=0 pass)."""
    for switch in ("cache", "streaming"):
        if switch in data and not isinstance(data[switch], bool):
            raise invalid(f"data.{switch}", "true or false", data[switch])
    for folder in ("root", "cache_dir"):  # Hydra reads data.cache_dir=2024 as a number
        if data.get(folder) is not None and not isinstance(data[folder], str):
            raise invalid(f"data.{folder}", f"a folder's path (a name of digits goes in quotes: data.{folder}='2024')",
                          data[folder])
    for side in ("src_lang", "tgt_lang"):
        if not (isinstance(data.get(side), str) and data[side].strip()):
            raise invalid(f"data.{side}", "a language code, e.g. de", data.get(side))
    worker_count(data)
    check_languages(data)


def check_languages(data: Mapping) -> None:
    """One language on both sides reads one text twice (the same file, column or field), a copy task
    that nobody means; only a tab-separated file has its own target column for a same-language task."""
    language = data.get("src_lang")
    if language == data.get("tgt_lang") and not (data.get("source") == "files" and data.get("format") == "tsv"):
        raise ConfigError(f"data.src_lang and data.tgt_lang are both {language!r}: source and target would "
                          "be the same text; set data.tgt_lang to the language to translate into")
