"""From config to training-ready ids: load, clean, train SentencePiece, tokenize, filter, cache.

``prepare_data`` is the only entry point training needs. The training split is never held whole:
it is read in chunks of ``ENCODE_CHUNK`` pairs, SentencePiece trains on a seeded sample of it
(``tokenizer.sample_size`` pairs), and the ids go straight to disk. The result is a single
uncompressed ``.npz`` of flat integer arrays (never pickles) whose training ids are memory-mapped
(``storage.RaggedIds``), so a corpus larger than memory trains from the page cache. With
``data.cache`` on, that file is kept under the cache folder, keyed by a hash of everything that
determines it (``cache_key``), and later runs with the same data settings skip all of this.
A run started from a checkpoint (``init_from``) brings its SentencePiece models: they encode the
data instead of new ones, and the cache key holds their digest instead of the tokenizer settings.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import sentencepiece as spm
from omegaconf import DictConfig, OmegaConf

import nmt
from nmt.data.cleaning import CleanStats, clean_pairs, drop_long
from nmt.data.corpus import (
    is_streamed,
    iter_split,
    load_split,
    shared_files,
    shared_hub_split,
    split_identity,
)
from nmt.data.prepared import PreparedData, read_prepared, write_prepared
from nmt.data.streaming import IdFile, Reservoir, add_stats, encode_chunks, sample_texts
from nmt.data.subword_sampling import OPTIONS as SAMPLING_OPTIONS
from nmt.data.tokenizer import Tokenizers, VocabularyTooLarge
from nmt.errors import ConfigError, DataError
from nmt.values import is_int

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump when the cached arrays or the cleaning rules change


def _plain(section) -> dict:
    return OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)


def _splits(data_cfg: Mapping) -> tuple[str, str]:
    return data_cfg.get("train_split") or "train", data_cfg.get("valid_split") or "val"


def _optional_count(data_cfg: Mapping, key: str) -> int | None:
    """``data.<key>``, which must be null or a positive integer (max_train_examples, max_len)."""
    n = data_cfg.get(key)
    if n is not None and not (is_int(n) and n > 0):
        raise ConfigError(f"data.{key} must be null or a positive integer; got {n!r}")
    return n


def cache_key(cfg: Mapping, tokenizers: Tokenizers | None = None) -> str:
    """Hex digest of everything the prepared data depends on (see the module docstring); with
    ``tokenizers`` (given SentencePiece models) their bytes stand for the tokenizer settings."""
    data_cfg = cfg["data"]
    train_split, valid_split = _splits(data_cfg)
    parts = {
        "cache_format": CACHE_FORMAT,
        "nmt": nmt.__version__,
        "sentencepiece": spm.__version__,
        "train": split_identity(data_cfg, train_split),
        "valid": split_identity(data_cfg, valid_split),
        "langs": [data_cfg["src_lang"], data_cfg["tgt_lang"]],
        "max_train_examples": _optional_count(data_cfg, "max_train_examples"),
        "max_len": _optional_count(data_cfg, "max_len"),
        "on_decode_error": data_cfg.get("on_decode_error") or "error",
        # Subword sampling resegments each epoch in the trainer: the prepared ids do not depend on it.
        "tokenizer": ({k: v for k, v in _plain(cfg["tokenizer"]).items() if k not in SAMPLING_OPTIONS}
                      if tokenizers is None else _models_digest(tokenizers)),
        "seed": cfg["seed"],
        "streamed": is_streamed(data_cfg),  # a stream samples its head, not a reservoir
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _models_digest(tokenizers: Tokenizers) -> str:
    return hashlib.sha256(b"".join(tokenizers.model_files().values())).hexdigest()


def _clean(name: str, src: list[str], tgt: list[str]) -> tuple[list[str], list[str], CleanStats]:
    src, tgt, stats = clean_pairs(src, tgt)
    if not src:
        raise DataError(f"{name} corpus is empty after cleaning ({stats})")
    return src, tgt, stats


ENCODE_CHUNK = 10_000  # training pairs read, cleaned and tokenized at a time


def worker_count(data_cfg: Mapping) -> int:
    """The tokenization processes `data.num_workers` asks for; ConfigError for an invalid value."""
    workers = data_cfg.get("num_workers", 1)
    if workers is None:
        return os.cpu_count() or 1
    if not (is_int(workers) and workers > 0):
        raise ConfigError(f"data.num_workers must be null (all cores) or a positive integer; got {workers!r}")
    return workers


def _sample_size(cfg: Mapping) -> int | None:
    """Sentence pairs SentencePiece trains on (None: all of them)."""
    n = cfg["tokenizer"].get("sample_size") or 0
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"tokenizer.sample_size must be 0 (all pairs) or a positive integer; got {n!r}")
    return n or None


def _cleaned_train_chunks(data_cfg: Mapping, stats: CleanStats) -> Iterator[tuple[list[str], list[str]]]:
    """The training split, chunk by chunk, cut at data.max_train_examples pairs and cleaned; the
    figures are counted into ``stats`` as chunks go by."""
    limit = _optional_count(data_cfg, "max_train_examples")
    for src, tgt in iter_split(data_cfg, _splits(data_cfg)[0], chunk_size=ENCODE_CHUNK):
        if limit is not None:
            src, tgt = src[:limit - stats.read], tgt[:limit - stats.read]
        src, tgt, part = clean_pairs(src, tgt)
        add_stats(stats, part)
        if src:
            yield src, tgt
        if limit is not None and stats.read >= limit:
            return


def _train_tokenizers(cfg: Mapping, stats: CleanStats) -> tuple[Tokenizers, Iterator]:
    """SentencePiece trained on a seeded random sample of tokenizer.sample_size training pairs, and
    the cleaned training chunks still to tokenize (their figures go into ``stats``).

    Files and memory-mapped hub datasets are read once for the sample (a reservoir, so the whole
    corpus is never in memory) and once more to tokenize. A streamed hub dataset is read once: its
    first sample_size pairs are the sample, and are handed back to be tokenized before the rest.
    """
    data_cfg, size = cfg["data"], _sample_size(cfg)
    if is_streamed(data_cfg):
        if size is None:
            raise ConfigError("tokenizer.sample_size must be a positive number of pairs with data.streaming=true")
        stream, head, held = _cleaned_train_chunks(data_cfg, stats), [], 0
        for chunk in stream:
            head.append(chunk)
            held += len(chunk[0])
            if held >= size:
                break
        pairs = [pair for src, tgt in head for pair in zip(src, tgt, strict=True)][:size]
        rest, sampled = itertools.chain(head, stream), stats
    else:
        reservoir, sampled = Reservoir(size, seed=cfg["seed"]), CleanStats()
        for src, tgt in _cleaned_train_chunks(data_cfg, sampled):
            reservoir.add(list(zip(src, tgt, strict=True)))
        pairs, rest = reservoir.items, _cleaned_train_chunks(data_cfg, stats)
    if not pairs:
        raise DataError(f"training corpus is empty after cleaning ({sampled})")
    # The sample is drawn here, in pairs; SentencePiece must not subsample it again.
    tok_cfg = {**_plain(cfg["tokenizer"]), "sample_size": 0}
    log.info("training SentencePiece (%s, %s pieces, %s) on %s sentence pairs", tok_cfg["type"],
             tok_cfg["vocab_size"], "joint" if tok_cfg["joint"] else "one model per language",
             f"{len(pairs):,}")
    try:
        return Tokenizers.train_from_config(tok_cfg, *sample_texts(pairs), seed=cfg["seed"]), rest
    except VocabularyTooLarge as e:
        raise e.with_remedies(_more_sentences(data_cfg, size, len(pairs), sampled)) from e


def _more_sentences(data_cfg: Mapping, size: int | None, n_sampled: int, seen: CleanStats) -> list[str]:
    """The options that held SentencePiece's sample to ``n_sampled`` pairs, as advice to raise them
    (``seen``: the cleaning figures of the pairs read while sampling); else: use more data."""
    remedies = []
    if size is not None and (seen.kept > n_sampled or (is_streamed(data_cfg) and n_sampled == size)):
        of_all = f"it sampled {n_sampled:,} of {seen.kept:,} pairs" if seen.kept > n_sampled else f"now {size:,}"
        remedies.append(f"raise tokenizer.sample_size ({of_all}; 0 takes every pair)")
    limit = _optional_count(data_cfg, "max_train_examples")
    if limit is not None and seen.read >= limit:
        remedies.append(f"raise data.max_train_examples (now {limit:,})")
    return remedies or ["use more training data"]


def _build(cfg: Mapping, path: Path, tokenizers: Tokenizers | None) -> None:
    """Prepare the data for ``cfg`` and write it to the ``.npz`` file ``path`` (atomically), encoded
    with ``tokenizers``, or with SentencePiece models trained here when None."""
    data_cfg = cfg["data"]
    train_split, valid_split = _splits(data_cfg)
    valid_src, valid_tgt, valid_stats = _clean("validation", *load_split(data_cfg, valid_split))
    train_stats = CleanStats()
    if tokenizers is None:
        tokenizers, chunks = _train_tokenizers(cfg, train_stats)
    else:
        chunks = _cleaned_train_chunks(data_cfg, train_stats)
    max_len = _optional_count(data_cfg, "max_len")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".prepare-") as work:
        with IdFile(Path(work) / "src") as src_file, IdFile(Path(work) / "tgt") as tgt_file:
            for src_ids, tgt_ids in encode_chunks(tokenizers, chunks, worker_count(data_cfg)):
                # max_len counts subwords, so this filter can only run after tokenization.
                src_ids, tgt_ids = drop_long(src_ids, tgt_ids, max_len, train_stats)
                src_file.append(src_ids)
                tgt_file.append(tgt_ids)
        if not train_stats.kept:
            raise DataError(f"training corpus is empty after cleaning ({train_stats})")
        log.info("train split %r: %s", train_split, train_stats)
        log.info("valid split %r: %s", valid_split, valid_stats)
        stats = {"train": train_stats, "valid": valid_stats}
        valid = {"valid_src_text": valid_src, "valid_tgt_text": valid_tgt,
                 "valid_src_ids": tokenizers.src.encode(valid_src), "valid_tgt_ids": tokenizers.tgt.encode(valid_tgt)}
        write_prepared(path, tokenizers, stats, valid, {"train_src_ids": src_file, "train_tgt_ids": tgt_file})


def _writable_folder(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _build_and_load(cfg: Mapping, cache_path: Path | None, tokenizers: Tokenizers | None) -> PreparedData:
    """Prepare the data into the cache file, or (cache off or not writable) into a temporary file
    that is deleted once mapped: the mapping stays valid and the disk space is freed at exit."""
    try:
        if cache_path is not None and _writable_folder(cache_path.parent):
            _build(cfg, cache_path, tokenizers)
            log.info("saved prepared data to %s", cache_path)
            return read_prepared(cache_path)
        if cache_path is not None:
            log.warning("cannot write the data cache folder %s; preparing into a temporary file",
                        cache_path.parent)
        with tempfile.TemporaryDirectory(prefix="nmt-prepared-") as folder:
            path = Path(folder) / "prepared.npz"
            _build(cfg, path, tokenizers)
            return read_prepared(path)
    except OSError as e:  # reading errors are DataErrors already: this is the disk we write to
        raise DataError(f"cannot write the prepared data ({e.filename or cache_path}): {e.strerror or e}") from e


def prepare_data(cfg: Mapping, run_dir: Path | None = None, tokenizers: Tokenizers | None = None) -> PreparedData:
    """Tokenizers and tokenized train/valid data for ``cfg`` (sections ``data``, ``tokenizer``, key
    ``seed``), from the cache when possible; the SentencePiece model(s) are saved into ``run_dir``.
    Given ``tokenizers`` encode the data; otherwise SentencePiece is trained on it."""
    data_cfg = cfg["data"]
    cache_path = None
    if data_cfg.get("cache"):
        cache_dir = data_cfg.get("cache_dir") or Path(data_cfg.get("root") or "data") / "cache"
        cache_path = Path(cache_dir).expanduser().absolute() / f"prepared-{cache_key(cfg, tokenizers)}.npz"
    data = read_prepared(cache_path) if cache_path is not None and cache_path.exists() else None
    if data is not None:
        log.info("loaded cached data from %s", cache_path)
    else:
        data = _build_and_load(cfg, cache_path, tokenizers)
        if data is None:  # the file was written a moment ago: unreadable means a bug, not bad input
            raise RuntimeError("freshly prepared data could not be read back")
    if run_dir is not None:
        data.tokenizers.save(run_dir)
    return data


def validation_overlap_warning(data_cfg: Mapping) -> str | None:
    """A warning when the validation split is read from the training split's own files: early stopping
    and best.pt would then pick the model that best remembers its training data."""
    train_split, valid_split = _splits(data_cfg)
    consequence = "validating on the training data makes early stopping and best.pt meaningless"
    hub_split = shared_hub_split(data_cfg, train_split, valid_split)
    if hub_split is not None and train_split == valid_split:
        return (f"data.train_split and data.valid_split are both {train_split!r} (the hub split {hub_split!r}): "
                f"{consequence}; validate on held-out pairs")
    if hub_split is not None:  # e.g. a dataset with a train split only: hold out a slice of it
        sliced = "[" in hub_split  # already a slice: no example that adds another
        hold_out = ("give them parts that do not overlap" if sliced else "hold out a part, e.g. data.splits="
                    f"'{{{train_split}: \"{hub_split}[:-1000]\", {valid_split}: \"{hub_split}[-1000:]\"}}'")
        return (f"data.splits maps {train_split} and {valid_split} both to the hub split {hub_split!r}: "
                f"{consequence}; {hold_out}")
    shared = shared_files(data_cfg, train_split, valid_split)
    if shared is None:
        return None
    if train_split == valid_split:
        options = f"data.train_split and data.valid_split are both {train_split!r}"
    elif data_cfg.get("source") == "files":
        options = f"data.files.{train_split} and data.files.{valid_split} name the same file"
    else:
        options = f"data.train_split={train_split!r} and data.valid_split={valid_split!r} name the same file"
    return f"{options} ({', '.join(map(str, shared))}): {consequence}; validate on held-out pairs"


def load_test_split(
    cfg: Mapping, split: str, tokenizers: Tokenizers | None = None
) -> tuple[list[str], list[str]]:
    """Raw ``(src, tgt)`` text of an evaluation split, only stripped: every line is kept (even an
    empty source) so hypotheses stay aligned with the references. ``tokenizers`` is accepted for
    call-site symmetry with ``prepare_data`` and is not needed: evaluation tokenizes itself."""
    del tokenizers
    src, tgt = load_split(cfg["data"], split)
    return [s.strip() for s in src], [t.strip() for t in tgt]
