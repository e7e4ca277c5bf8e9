"""An epoch's sampled segmentation, kept beside the checkpoints for a run resumed inside that epoch.

SentencePiece's sampling does not repeat in a new process (nmt.data.subword_sampling), and a resumed
epoch goes on from a batch position in the batches cut from its sample: resampled, some of that
epoch's pairs would come twice and others not at all. So rank 0 writes each epoch's sample here, and a
run resumed inside the epoch finishes it on that sample. Later epochs are sampled anew.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from nmt.data.storage import RaggedIds
from nmt.files import atomic_write

log = logging.getLogger(__name__)

FILE_NAME = "epoch-sample.npz"


def save_epoch_sample(path: Path, key: dict, src: RaggedIds, tgt: RaggedIds) -> None:
    """Writes the sample under `key` (what decides it: seed, epoch, settings) with `atomic_write`, so
    `path` is always a whole sample (a killed writer's temporary is removed when the run resumes)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            np.savez(f, key=np.array(json.dumps(key, sort_keys=True)), src_flat=src.flat, src_offsets=src.offsets,
                     tgt_flat=tgt.flat, tgt_offsets=tgt.offsets)
    except OSError as exc:  # only a resume inside this epoch needs it: it then samples anew
        log.warning("could not keep this epoch's sample in %s (%s); a run resumed inside the epoch will "
                    "sample it anew", path, exc.strerror or exc)


def load_epoch_sample(path: Path, key: dict) -> tuple[RaggedIds, RaggedIds] | None:
    """The sample saved under `key`, or None (none saved, another epoch or setting, or unreadable)."""
    try:
        with np.load(path) as saved:
            if str(saved["key"]) != json.dumps(key, sort_keys=True):
                return None
            return (RaggedIds(saved["src_flat"], saved["src_offsets"]),
                    RaggedIds(saved["tgt_flat"], saved["tgt_offsets"]))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
        return None
