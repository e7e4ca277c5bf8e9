"""The prepared-data file: tokenizers, cleaning figures and token ids in one uncompressed ``.npz``.

Only flat arrays, never pickles: id sequences as one int32 array plus (N + 1,) offsets, texts as
UTF-8 bytes plus offsets, the SentencePiece models as bytes, the rest as a JSON string. The training
ids are copied in block by block from the files they were written to, and read back memory-mapped.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nmt.data.cleaning import CleanStats
from nmt.data.storage import NpzWriter, RaggedIds, memmap_npz_member
from nmt.data.streaming import IdFile
from nmt.data.tokenizer import Tokenizers
from nmt.errors import CheckpointError
from nmt.files import atomic_write

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Tokenizers plus the cleaned, tokenized train and validation splits (ids without specials)."""

    tokenizers: Tokenizers
    train_src_ids: RaggedIds  # memory-mapped from the prepared-data file
    train_tgt_ids: RaggedIds
    valid_src_text: list[str]
    valid_tgt_text: list[str]
    valid_src_ids: list[list[int]]
    valid_tgt_ids: list[list[int]]
    stats: dict[str, CleanStats]  # "train" and "valid"


def write_prepared(path: Path, tokenizers: Tokenizers, stats: dict[str, CleanStats], valid: dict,
                   train: dict[str, IdFile]) -> None:
    """The prepared data as one uncompressed ``.npz`` of flat arrays (see ``read_prepared``), written
    under a temporary name and renamed, so readers see no file or the complete one."""
    models = tokenizers.to_dict()
    with atomic_write(path) as f:
        npz = NpzWriter(f)
        npz.add("meta", np.array(json.dumps({"joint": models["joint"],
                                              "stats": {k: asdict(v) for k, v in stats.items()}})))
        for side in ("src", "tgt"):
            if side in models:
                npz.add(f"model_{side}", np.frombuffer(models[side], dtype=np.uint8))
        for name, ids_file in train.items():
            npz.add_file(f"{name}_flat", ids_file.path, np.int32)
            npz.add(f"{name}_offsets", ids_file.offsets())
        for name in ("valid_src_ids", "valid_tgt_ids"):
            for key, array in _pack_ids(name, valid[name]).items():
                npz.add(key, array)
        for name in ("valid_src_text", "valid_tgt_text"):
            for key, array in _pack_text(name, valid[name]).items():
                npz.add(key, array)
        npz.close()


def _pack_ids(prefix: str, seqs: list[list[int]]) -> dict[str, np.ndarray]:
    """Ragged id lists as one flat int32 array plus (N + 1,) offsets."""
    ids = RaggedIds.from_lists(seqs)
    return {f"{prefix}_flat": ids.flat, f"{prefix}_offsets": ids.offsets}


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


def read_prepared(path: Path) -> PreparedData | None:
    """The prepared data in ``path``, its training ids memory-mapped; None if the file is unreadable."""
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
    # EOFError: np.load's answer to an empty file (a crash while the cache was first written, a full disk).
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, CheckpointError) as e:
        log.warning("ignoring unreadable data cache %s (%s); rebuilding it", path, e)
        return None
