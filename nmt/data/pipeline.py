"""From config to training-ready ids: load, clean, train SentencePiece, tokenize, filter, cache.

``prepare_data`` is the only entry point training needs. With ``data.cache`` on, its result is
stored under the cache folder keyed by a hash of everything that determines it (see
``cache_key``), so repeated runs with the same data settings skip SentencePiece training and
tokenization. The cache is a single uncompressed ``.npz`` of flat integer arrays, never pickles; a
cached training split is memory-mapped from it (``storage.RaggedIds``) instead of read into lists,
so a corpus larger than memory trains from the page cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm
from omegaconf import DictConfig, OmegaConf

import nmt
from nmt.data.cleaning import CleanStats, clean_pairs, drop_long
from nmt.data.corpus import load_split, split_identity
from nmt.data.storage import RaggedIds, memmap_npz_member
from nmt.data.tokenizer import SubwordTokenizer, Tokenizers
from nmt.errors import CheckpointError, ConfigError, DataError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the cached arrays or the cleaning rules change


@dataclass
class PreparedData:
    """Tokenizers plus the cleaned, tokenized train and validation splits (ids without specials)."""

    tokenizers: Tokenizers
    train_src_ids: list[list[int]] | RaggedIds  # RaggedIds (memory-mapped) when read from the cache
    train_tgt_ids: list[list[int]] | RaggedIds
    valid_src_text: list[str]
    valid_tgt_text: list[str]
    valid_src_ids: list[list[int]]
    valid_tgt_ids: list[list[int]]
    stats: dict[str, CleanStats]  # "train" and "valid"


def _plain(section) -> dict:
    return OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)


def _splits(data_cfg: Mapping) -> tuple[str, str]:
    return data_cfg.get("train_split") or "train", data_cfg.get("valid_split") or "val"


def _optional_count(data_cfg: Mapping, key: str) -> int | None:
    """``data.<key>``, which must be null or a positive integer (max_train_examples, max_len)."""
    n = data_cfg.get(key)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise ConfigError(f"data.{key} must be null or a positive integer; got {n!r}")
    return n


def cache_key(cfg: Mapping) -> str:
    """Hex digest of everything the prepared data depends on (see the module docstring)."""
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
        "tokenizer": _plain(cfg["tokenizer"]),
        "seed": cfg["seed"],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _clean(name: str, src: list[str], tgt: list[str]) -> tuple[list[str], list[str], CleanStats]:
    src, tgt, stats = clean_pairs(src, tgt)
    if not src:
        raise DataError(f"{name} corpus is empty after cleaning ({stats})")
    return src, tgt, stats


ENCODE_CHUNK = 20_000  # sentences per task sent to a tokenization worker
_worker_tokenizer: SubwordTokenizer | None = None


def _workers(data_cfg: Mapping) -> int:
    workers = data_cfg.get("num_workers", 1)
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers <= 0:
        raise ConfigError(f"data.num_workers must be null (all cores) or a positive integer; got {workers!r}")
    return workers


def _start_worker(model_bytes: bytes) -> None:
    global _worker_tokenizer
    _worker_tokenizer = SubwordTokenizer.from_bytes(model_bytes)


def _encode_chunk(texts: list[str]) -> list[list[int]]:
    return _worker_tokenizer.encode(texts)


def _encode(tokenizer: SubwordTokenizer, texts: list[str], workers: int) -> list[list[int]]:
    """`tokenizer.encode(texts)`, in `workers` processes for large inputs (same ids, same order)."""
    if workers <= 1 or len(texts) <= ENCODE_CHUNK:
        return tokenizer.encode(texts)
    chunks = [texts[i:i + ENCODE_CHUNK] for i in range(0, len(texts), ENCODE_CHUNK)]
    # Processes, not threads: encoding a Python list holds the GIL. Each worker loads the model once.
    with multiprocessing.get_context("spawn").Pool(workers, _start_worker, (tokenizer.to_bytes(),)) as pool:
        return [ids for chunk in pool.imap(_encode_chunk, chunks) for ids in chunk]


def _build(cfg: Mapping) -> PreparedData:
    data_cfg = cfg["data"]
    train_split, valid_split = _splits(data_cfg)
    src, tgt = load_split(data_cfg, train_split)
    n = _optional_count(data_cfg, "max_train_examples")
    train_src, train_tgt, train_stats = _clean("training", src[:n], tgt[:n])
    valid_src, valid_tgt, valid_stats = _clean("validation", *load_split(data_cfg, valid_split))
    tokenizers = Tokenizers.train_from_config(cfg["tokenizer"], train_src, train_tgt, seed=cfg["seed"])
    workers = _workers(data_cfg)
    # max_len counts subwords, so the filter can only run after tokenization.
    train_src_ids, train_tgt_ids = drop_long(
        _encode(tokenizers.src, train_src, workers),
        _encode(tokenizers.tgt, train_tgt, workers),
        _optional_count(data_cfg, "max_len"),
        train_stats,
    )
    if not train_src_ids:
        raise DataError(f"training corpus is empty after cleaning ({train_stats})")
    log.info("train split %r: %s", train_split, train_stats)
    log.info("valid split %r: %s", valid_split, valid_stats)
    return PreparedData(
        tokenizers,
        train_src_ids,
        train_tgt_ids,
        valid_src,
        valid_tgt,
        tokenizers.src.encode(valid_src),
        tokenizers.tgt.encode(valid_tgt),
        {"train": train_stats, "valid": valid_stats},
    )


def _pack_ids(prefix: str, seqs: list[list[int]]) -> dict[str, np.ndarray]:
    """Ragged id lists as one flat int32 array plus (N + 1,) offsets."""
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    flat = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
    return {f"{prefix}_flat": flat, f"{prefix}_offsets": offsets}


def _unpack_ids(arrays, prefix: str) -> list[list[int]]:
    flat, offsets = arrays[f"{prefix}_flat"].tolist(), arrays[f"{prefix}_offsets"].tolist()
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def _pack_text(prefix: str, texts: list[str]) -> dict[str, np.ndarray]:
    """Strings as concatenated UTF-8 bytes (uint8) plus byte offsets."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return {f"{prefix}_flat": np.frombuffer(b"".join(encoded), dtype=np.uint8), f"{prefix}_offsets": offsets}


def _unpack_text(arrays, prefix: str) -> list[str]:
    flat, offsets = arrays[f"{prefix}_flat"].tobytes(), arrays[f"{prefix}_offsets"].tolist()
    return [flat[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def _save_cache(path: Path, data: PreparedData) -> None:
    models = data.tokenizers.to_dict()
    meta = {"joint": models["joint"], "stats": {k: asdict(v) for k, v in data.stats.items()}}
    arrays = {"meta": np.array(json.dumps(meta))}
    for side in ("src", "tgt"):
        if side in models:
            arrays[f"model_{side}"] = np.frombuffer(models[side], dtype=np.uint8)
    for name in ("train_src_ids", "train_tgt_ids", "valid_src_ids", "valid_tgt_ids"):
        arrays.update(_pack_ids(name, getattr(data, name)))
    for name in ("valid_src_text", "valid_tgt_text"):
        arrays.update(_pack_text(name, getattr(data, name)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # readers see the old file or the complete new one, never half of it
    except OSError as e:  # the cache only saves time; a read-only folder must not stop training
        log.warning("could not write the data cache %s: %s", path, e)
        return
    log.info("saved prepared data to %s", path)


def _load_cache(path: Path) -> PreparedData | None:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            models = {"joint": meta["joint"], "src": arrays["model_src"].tobytes()}
            if not meta["joint"]:
                models["tgt"] = arrays["model_tgt"].tobytes()
            fields = {name: _unpack_ids(arrays, name) for name in ("valid_src_ids", "valid_tgt_ids")}
            fields.update({name: RaggedIds(memmap_npz_member(path, f"{name}_flat"), arrays[f"{name}_offsets"])
                           for name in ("train_src_ids", "train_tgt_ids")})
            fields.update({name: _unpack_text(arrays, name) for name in ("valid_src_text", "valid_tgt_text")})
        stats = {k: CleanStats(**v) for k, v in meta["stats"].items()}
        return PreparedData(Tokenizers.from_dict(models), stats=stats, **fields)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, CheckpointError) as e:
        log.warning("ignoring unreadable data cache %s (%s); rebuilding it", path, e)
        return None


def prepare_data(cfg: Mapping, run_dir: Path | None = None) -> PreparedData:
    """Tokenizers and tokenized train/valid data for ``cfg`` (sections ``data``, ``tokenizer``, key
    ``seed``), from the cache when possible; the SentencePiece model(s) are saved into ``run_dir``."""
    data_cfg = cfg["data"]
    cache_path = None
    if data_cfg.get("cache"):
        cache_dir = data_cfg.get("cache_dir") or Path(data_cfg.get("root") or "data") / "cache"
        cache_path = Path(cache_dir).expanduser().absolute() / f"prepared-{cache_key(cfg)}.npz"
    data = _load_cache(cache_path) if cache_path is not None and cache_path.exists() else None
    if data is not None:
        log.info("loaded cached data from %s", cache_path)
    else:
        data = _build(cfg)
        if cache_path is not None:
            _save_cache(cache_path, data)
    if run_dir is not None:
        data.tokenizers.save(run_dir)
    return data


def load_test_split(
    cfg: Mapping, split: str, tokenizers: Tokenizers | None = None
) -> tuple[list[str], list[str]]:
    """Raw ``(src, tgt)`` text of an evaluation split, only stripped: every line is kept (even an
    empty source) so hypotheses stay aligned with the references. ``tokenizers`` is accepted for
    call-site symmetry with ``prepare_data`` and is not needed: evaluation tokenizes itself."""
    del tokenizers
    src, tgt = load_split(cfg["data"], split)
    return [s.strip() for s in src], [t.strip() for t in tgt]
