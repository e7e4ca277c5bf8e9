"""Multi30k task 1 (English image captions with German and French translations): where the files
live and how to fetch the missing ones.

The files are kept exactly as published (``<root>/multi30k/{split}.{lang}.gz``) so that a copy
made by hand and one downloaded here are interchangeable.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import shutil
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from nmt.errors import ConfigError, DataError
from nmt.files import atomic_write

log = logging.getLogger(__name__)

DEFAULT_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{split}.{lang}.gz"
SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco")
LANGS = ("en", "de", "fr")
_TIMEOUT_S = 60


def multi30k_file(root: str | Path, split: str, lang: str) -> Path:
    """Path of one Multi30k file under ``root`` (the folder that contains ``multi30k/``)."""
    return Path(root) / "multi30k" / f"{split}.{lang}.gz"


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{value!r} is not a Multi30k {kind}; valid: {', '.join(choices)}")


def _download(url: str, dest: Path, others: list[Path] = ()) -> None:
    """Fetch ``url`` into ``dest`` through a temporary file, so ``dest`` is complete or absent.
    ``others``: the files still missing after it, named in the error so a download by hand gets all."""
    log.info("downloading %s -> %s", url, dest)
    try:
        with atomic_write(dest) as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out)
            out.flush()
            # An error page or a cut-off transfer is not gzip; catching it now keeps junk out of the
            # cache folder, where it would otherwise fail every later run.
            with gzip.open(out.name, "rb") as f:
                while f.read(1 << 20):
                    pass
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        also = f" (and beside it {', '.join(p.name for p in others)})" if others else ""
        raise DataError(
            f"could not download {url} ({reason}); download it by hand and save it as {dest}{also}"
        ) from e


def ensure_multi30k(
    root: str | Path,
    splits: Iterable[str],
    langs: Iterable[str],
    url_template: str = DEFAULT_URL,
) -> Path:
    """Make sure ``{split}.{lang}.gz`` exists for every requested pair; return ``<root>/multi30k``.

    Files already present are trusted and never re-fetched. ``url_template`` is formatted with
    ``split`` and ``lang`` (any URL ``urllib`` understands, including ``file://``).
    """
    splits, langs = list(splits), list(langs)
    for split in splits:
        _check_choice("split", split, SPLITS)
    for lang in langs:
        _check_choice("language", lang, LANGS)
    folder = Path(root) / "multi30k"
    missing = [(split, lang) for split in splits for lang in langs if not multi30k_file(root, split, lang).exists()]
    created = [path for path in (folder, *folder.parents) if not path.exists()] if missing else []
    if missing:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create {folder}: {e.strerror or e}") from e
    try:
        for i, (split, lang) in enumerate(missing):
            _download(url_template.format(split=split, lang=lang), multi30k_file(root, split, lang),
                      [multi30k_file(root, *later) for later in missing[i + 1:]])
    except DataError:
        for path in created:  # innermost first; one that holds a finished download stays
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return folder
