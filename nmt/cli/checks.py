"""Checks of the inference commands' options at start-up, before a checkpoint is loaded.

Hydra accepts any value for a known key; these reject values of the wrong kind or range
(`beam_size=abc`, `beam_size=0`) with one line naming the option, instead of a TypeError deep in the
search or a silently different decoding.
"""

import math
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from nmt.errors import CheckpointError, ConfigError, DataError
from nmt.training.runtime import resolve_device
from nmt.values import invalid, is_int, is_number, path_list

MAX_LEN_A = 1000  # output tokens per source token
MAX_LEN_B = 100_000  # output tokens beyond that
# GNMT's alpha is tuned in [0, 2]; far beyond, every search picks its longest hypothesis, and from about
# 30 the penalty ((5 + L) / 6) ** alpha of a long hypothesis overflows float32 (NaN scores at 60).
MAX_LENGTH_PENALTY = 10


def fail(option: str, wanted: str, value) -> None:
    raise invalid(option, wanted, value)


def check_positive_int(cfg, option: str) -> None:
    value = OmegaConf.select(cfg, option)
    if not (is_int(value) and value >= 1):
        fail(option, "a positive integer", value)


def check_inference_options(cfg) -> None:
    """The options every inference command shares (configs/_inference.yaml)."""
    resolve_device(cfg.get("device"))  # before the model loads (or a sweep's first job runs)
    check_positive_int(cfg, "batch_sentences")


def check_decoding_options(cfg) -> None:
    """The options of the inference commands that search (configs/_inference.yaml and _decoding.yaml)."""
    check_inference_options(cfg)
    check_positive_int(cfg, "beam_size")
    if not (is_number(cfg.get("length_penalty")) and 0 <= cfg.get("length_penalty") <= MAX_LENGTH_PENALTY):
        fail("length_penalty", f"a number from 0 to {MAX_LENGTH_PENALTY}", cfg.get("length_penalty"))
    # Bounded so that the length limit stays a length: max_len_a=1e30 would overflow it
    if not (is_number(cfg.get("max_len_a")) and 0 <= cfg.get("max_len_a") <= MAX_LEN_A):
        fail("max_len_a", f"a number from 0 to {MAX_LEN_A} (output tokens per source token)", cfg.get("max_len_a"))
    beta = cfg.get("coverage_penalty", 0.0)  # nmt-translate and nmt-evaluate only
    if not (is_number(beta) and 0 <= beta < math.inf):  # inf x log(1) is NaN: NaN scores, a report with Infinity
        fail("coverage_penalty", "a finite number >= 0 (0: off)", beta)
    ngram = cfg.get("no_repeat_ngram_size", 0)  # nmt-translate and nmt-evaluate only
    if not (is_int(ngram) and ngram >= 0):
        fail("no_repeat_ngram_size", "an integer >= 0 (0: off)", ngram)
    if not (is_int(cfg.get("max_len_b")) and 0 <= cfg.get("max_len_b") <= MAX_LEN_B):
        fail("max_len_b", f"an integer from 0 to {MAX_LEN_B}", cfg.get("max_len_b"))
    cap = cfg.get("max_output_len")
    if cap is not None and not (is_int(cap) and 1 <= cap <= MAX_LEN_B):
        fail("max_output_len", f"null (no cap) or an integer from 1 to {MAX_LEN_B}", cap)
    if cfg.max_len_a == 0 and cfg.max_len_b == 0:
        # The limit max_len_a x source length + max_len_b would allow no output token at all.
        raise ConfigError("max_len_a=0 and max_len_b=0 allow no output at all; raise one of them")


def check_nbest(cfg) -> None:
    """nbest <= beam_size, as nmt-serve requires: a larger beam than asked for would decode differently."""
    check_positive_int(cfg, "nbest")
    if cfg.nbest > cfg.beam_size:
        raise ConfigError(f"nbest={cfg.nbest} needs beam_size >= {cfg.nbest}, got beam_size={cfg.beam_size}")


def check_sampling(cfg) -> None:
    """nmt-translate's sampling options; with sampling=true, nbest counts the samples (no beam)."""
    check_bool(cfg, "sampling")
    check_positive_int(cfg, "nbest")
    if not (is_number(cfg.temperature) and 0 < cfg.temperature < math.inf):
        fail("temperature", "a number > 0", cfg.temperature)
    if not (is_int(cfg.sampling_topk) and cfg.sampling_topk >= 0):
        fail("sampling_topk", "an integer >= 0 (0: every token)", cfg.sampling_topk)
    if not (is_number(cfg.sampling_topp) and 0 < cfg.sampling_topp <= 1):
        fail("sampling_topp", "a number in (0, 1] (1: every token)", cfg.sampling_topp)
    if not (is_int(cfg.sampling_seed) and 0 <= cfg.sampling_seed < 2**63):
        fail("sampling_seed", "an integer >= 0", cfg.sampling_seed)


def check_bool(cfg, option: str) -> None:
    if not isinstance(cfg.get(option), bool):
        fail(option, "true or false", cfg.get(option))


def check_vmax(cfg) -> None:
    vmax = cfg.get("vmax")
    if vmax is not None and not (is_number(vmax) and 0 < vmax < math.inf):  # inf: a blank plot
        fail("vmax", "null (the largest weight) or a finite number > 0", vmax)


def check_paths(cfg, *options: str) -> None:
    """Each option null or a path: Hydra reads `input=2024` as a number and `input=[a]` as a list,
    where the commands need a file name (a name of digits works quoted: input='2024'). An empty one
    (`src_file=$UNSET`) is refused too: it was read as the folder "." or ignored for the default."""
    for option in options:
        value = cfg.get(option)
        if value is not None and not isinstance(value, str):
            fail(option, f"a path (a name of digits goes in quotes: {option}='2024')", value)
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{option}= is empty; give a path")


def check_inputs_exist(cfg, *options: str, checkpoints: tuple[str, ...] = ("checkpoint",)) -> None:
    """The checkpoints (`checkpoints`: options that name one or a list) and files (`options`; `-` is
    standard input) the command reads are there: checked with the other options, so that a sweep's job
    whose file is missing is refused before the first job starts (`nmt-evaluate -m src_file=a.de,typo.de`),
    not when its turn comes. The messages are those of loading and reading them."""
    for option in checkpoints:
        value = cfg.get(option)
        for path in [] if value is None else path_list(option, value):
            if not Path(path).exists():
                raise CheckpointError(f"checkpoint not found: {path}")
    for option in options:
        path = cfg.get(option)
        if isinstance(path, str) and path != "-" and not Path(path).exists():
            raise DataError(f"{path}: no such file")


def check_single_checkpoint(cfg, option: str = "checkpoint") -> None:
    """For commands that take one model: a list (an ensemble) is for nmt-evaluate and nmt-translate."""
    if isinstance(cfg.get(option), ListConfig):
        raise ConfigError(f"{option}= takes one checkpoint here; a list of checkpoints (an ensemble) is for "
                          "nmt-evaluate and nmt-translate")
