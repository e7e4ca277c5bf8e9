"""Reading one split of a parallel corpus: raw sentence pairs, streamed in chunks or as two lists.

The ``data`` config section picks where sentences come from (``data.source``):

- ``multi30k``: the Multi30k files under ``data.root`` (downloaded when missing);
- ``hub``: a Hugging Face dataset (``data.name``, ``data.config``, ``data.splits``);
- ``files``: local files (``data.files`` maps split -> path, ``data.format`` is text, tsv or jsonl).

Training splits are streamed in chunks (``iter_split``), so a corpus never has to fit in memory;
small splits can be read whole (``load_split``). Every reader returns sentences untouched (no
stripping or filtering: that is ``cleaning``'s job), and ``split_identity`` describes what a split
was read from so caches can tell when it changed.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nmt.data.multi30k import DEFAULT_URL, ensure_multi30k, multi30k_file
from nmt.data.readers import iter_lines, iter_parallel_text
from nmt.errors import ConfigError, DataError
from nmt.files import same_file

SOURCES = ("multi30k", "hub", "files")
FILE_FORMATS = ("text", "tsv", "jsonl")
CHUNK_SIZE = 10_000  # pairs per chunk when a split is streamed
SHOWN_CONFIGS = 12  # a hub dataset's configurations named in an error (some have hundreds of language pairs)


def _require(cfg: Mapping, key: str) -> Any:
    value = cfg.get(key)
    if value is None:
        raise ConfigError(f"data.{key} must be set when data.source={cfg.get('source')}")
    return value


def _source(cfg: Mapping) -> str:
    source = cfg.get("source")
    if source not in SOURCES:
        raise ConfigError(f"data.source={source!r} is unknown; valid: {', '.join(SOURCES)}")
    return source


def _resolve(path: str | Path) -> Path:
    """Absolute path; relative paths are taken from the current working directory."""
    return Path(path).expanduser().absolute()


def _lookup_split(table: Mapping | None, split: str, option: str) -> Any:
    if isinstance(table, DictConfig) and split in table.keys() and OmegaConf.is_missing(table, split):
        raise ConfigError(f"{option}.{split} is required: set {option}.{split}=PATH")
    if table is None or split not in table:
        known = ", ".join(table or []) or "none"
        raise ConfigError(f"split {split!r} is not configured in {option}; configured: {known}")
    return table[split]


def _format(cfg: Mapping) -> str:
    """File format of a file-based source (Multi30k is plain text whatever data.format says)."""
    if cfg.get("source") == "multi30k":
        return "text"
    fmt = cfg.get("format") or "text"
    if fmt not in FILE_FORMATS:
        raise ConfigError(f"data.format={fmt!r} is unknown; valid: {', '.join(FILE_FORMATS)}")
    return fmt


def _file_paths(cfg: Mapping, split: str) -> list[Path]:
    """Files a split is read from: ``[src, tgt]`` for text formats, ``[file]`` for tsv/jsonl."""
    source = _source(cfg)
    src_lang, tgt_lang = _require(cfg, "src_lang"), _require(cfg, "tgt_lang")
    if source == "multi30k":
        root = _resolve(cfg.get("root") or "data")
        ensure_multi30k(root, [split], [src_lang, tgt_lang], cfg.get("url") or DEFAULT_URL)
        return [multi30k_file(root, split, src_lang), multi30k_file(root, split, tgt_lang)]
    fmt = _format(cfg)
    template = str(_lookup_split(cfg.get("files"), split, "data.files"))
    if fmt != "text":
        return [_resolve(template)]
    if "{lang}" not in template:
        raise ConfigError(f"data.files.{split}={template!r} must contain {{lang}} for data.format=text")
    return [_resolve(template.replace("{lang}", lang)) for lang in (src_lang, tgt_lang)]


def _dataset_languages(ds, batch: Mapping[str, list]) -> tuple[list[str], str]:
    """Languages a dataset holds and the column prefix to read them under ("translation." or "").
    Uses the declared features when there are any (a streamed dataset may have none), else ``batch``."""
    features = getattr(ds, "features", None)
    if "translation" in batch:
        feature = features.get("translation") if features else None
        languages = getattr(feature, "languages", None) or list(feature or {})
        if not languages:
            first = next((row for row in batch["translation"] if row), {})
            languages = list(first)
        return list(languages), "translation"
    return list(features or batch), ""


def iter_dataset_pairs(
    ds, src_lang: str, tgt_lang: str, *, origin: str = "dataset", chunk_size: int = CHUNK_SIZE
) -> Iterator[tuple[list[str], list[str]]]:
    """Sentence pairs of a ``datasets.Dataset`` (memory-mapped Arrow) or ``IterableDataset`` (a
    stream), ``chunk_size`` pairs at a time, so no more than one chunk is ever in Python lists.

    Accepts the hub's usual shape (a ``translation`` column of ``{lang: text}``, as in wmt14 or
    opus_books) and the flat one (one column per language). ``origin`` names the data in errors.
    Missing values become empty strings, which cleaning then drops as empty pairs.
    """
    checked, row = False, 0
    for batch in ds.iter(batch_size=chunk_size):
        if not checked:
            present, column = _dataset_languages(ds, batch)
            missing = [lang for lang in (src_lang, tgt_lang) if lang not in present]
            if missing:
                raise DataError(
                    f"{origin}: no {', '.join(missing)} text; languages present: {', '.join(present)}")
            checked = True
        if column:
            rows = [row or {} for row in batch[column]]
            src, tgt = [row.get(src_lang) for row in rows], [row.get(tgt_lang) for row in rows]
        else:
            src, tgt = batch[src_lang], batch[tgt_lang]
        yield _texts(src, src_lang, origin, row), _texts(tgt, tgt_lang, origin, row)
        row += len(src)


def _texts(values: list, lang: str, origin: str, first_row: int) -> list[str]:
    """A chunk's sentences of one language, missing ones as "" (cleaning drops the pair). A value of
    another kind (a list of words, a number) is refused: as text it would train on "['Ein', 'Hund']"."""
    if all(isinstance(value, str) for value in values):  # the usual case: one pass, the list as it is
        return values
    for offset, value in enumerate(values):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{origin}: row {first_row + offset + 1:,}: its {lang} text is not a string but a value "
                            f"of type {type(value).__name__}: {str(value)[:40]}")
    return ["" if value is None else value for value in values]


def pairs_from_dataset(
    ds, src_lang: str, tgt_lang: str, *, origin: str = "dataset"
) -> tuple[list[str], list[str]]:
    """All pairs of ``iter_dataset_pairs`` in two lists (for small datasets: dev and test sets)."""
    return _concat(iter_dataset_pairs(ds, src_lang, tgt_lang, origin=origin))


def _concat(chunks: Iterable[tuple[list[str], list[str]]]) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    for s, t in chunks:
        src.extend(s)
        tgt.extend(t)
    return src, tgt


def _chunked(pairs: Iterable[tuple[str, str]], chunk_size: int) -> Iterator[tuple[list[str], list[str]]]:
    pairs = iter(pairs)
    while chunk := list(itertools.islice(pairs, chunk_size)):
        src, tgt = zip(*chunk, strict=True)
        yield list(src), list(tgt)


def is_streamed(cfg: Mapping) -> bool:
    """Whether the corpus is a hub dataset read in streaming mode (``data.streaming=true``): it is
    then read once, front to back, and never stored whole on disk."""
    return cfg.get("source") == "hub" and bool(cfg.get("streaming"))


def _open_hub(cfg: Mapping, split: str):
    import datasets  # slow to import; only hub corpora need it

    name = _require(cfg, "name")
    hub_split = _hub_split(cfg, split)
    streaming = {"streaming": True} if is_streamed(cfg) else {}
    revision = {"revision": str(cfg["revision"])} if cfg.get("revision") else {}
    try:
        ds = datasets.load_dataset(name, cfg.get("config") or None, split=hub_split, **streaming, **revision)
    except Exception as e:  # network, authentication, unknown name: all mean "cannot get it"
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        unknown_config = _unknown_config_error(reason, name)
        if unknown_config is not None:
            raise unknown_config from e
        raise DataError(f"cannot load hub dataset {name} (split {hub_split}): {reason}") from e
    return ds, f"{name}[{hub_split}]"


def _unknown_config_error(reason: str, name: str) -> ConfigError | None:
    """datasets' "BuilderConfig 'de-en' not found. Available: ['default']" as the option to change:
    data.config defaults to de-en (for wmt14), which a dataset of one's own seldom has."""
    found = re.match(r"BuilderConfig '(.*)' not found\.(?: Available: (\[.*\]))?", reason)
    if found is None:
        return None
    try:
        available = [str(c) for c in ast.literal_eval(found.group(2) or "[]")]
    except (ValueError, SyntaxError):
        available = []
    shown = ", ".join(available[:SHOWN_CONFIGS]) + (f" ({len(available)} in all)" if len(available) > SHOWN_CONFIGS else "")
    choices = f"choose one of: {shown}, or " if available else "choose one of its configurations, or "
    return ConfigError(f"data.config={found.group(1)!r} is not a configuration of hub dataset {name}; {choices}"
                       "data.config=null for its default")


@contextlib.contextmanager
def _hub_bars_hidden() -> Iterator[None]:
    """datasets' and huggingface_hub's progress bars (downloads, "Generating train split") off for the
    block, then back as they were. An HF_DATASETS_DISABLE_PROGRESS_BARS or HF_HUB_DISABLE_PROGRESS_BARS
    environment variable keeps the last word (the libraries warn when asked otherwise: not needed here)."""
    import datasets
    from huggingface_hub import utils as hub_utils

    shown = not datasets.are_progress_bars_disabled(), not hub_utils.are_progress_bars_disabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets.disable_progress_bars()
        hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if shown[0]:
                datasets.enable_progress_bars()
            if shown[1]:
                hub_utils.enable_progress_bars()


def hub_progress_bars(data_cfg: Mapping, shown: bool) -> contextlib.AbstractContextManager:
    """A block in which a hub corpus is read with the libraries' own progress bars ``shown`` or not
    (trainer.progress); other sources have none, and do not import datasets for it."""
    return contextlib.nullcontext() if shown or data_cfg.get("source") != "hub" else _hub_bars_hidden()


def _hub_split(cfg: Mapping, split: str) -> str:
    splits = cfg.get("splits")
    return split if splits is None else str(_lookup_split(splits, split, "data.splits"))


def _iter_tsv(path: Path, on_decode_error: str) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(iter_lines(path, on_decode_error=on_decode_error), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected 'source<TAB>target', found {len(fields)} fields")
        yield fields[0], fields[1]


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), "null" if value is None else type(value).__name__)


def _jsonl_pair(line: str, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """The pair on one JSON line, nested (``{"translation": {lang: text}}``) or flat (``{lang: text}``);
    ValueError says what is wrong with the line. Null text becomes "", which cleaning drops."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        where = e.msg if e.msg.endswith(" at") else f"{e.msg} at"  # "Unterminated string starting at"
        raise ValueError(f"invalid JSON ({where} column {e.colno})") from e
    except RecursionError:  # a line of 200,000 '[': json nests a call per bracket
        raise ValueError("invalid JSON (nested too deeply)") from None
    nested = isinstance(row, dict) and "translation" in row
    row = row["translation"] if nested else row
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object{' as translation' if nested else ''}, found {_json_type(row)}")
    missing = [json.dumps(lang) for lang in (src_lang, tgt_lang) if lang not in row]
    if missing:
        where = "in the translation" if nested else "in the row"
        raise ValueError(f"no {' or '.join(missing)} {where} (found: {', '.join(row) or 'nothing'})")
    return _jsonl_text(row, src_lang), _jsonl_text(row, tgt_lang)


def _jsonl_text(row: dict, lang: str) -> str:
    """The sentence under `lang`: a string, or "" for null. Anything else is refused, not str()-ed into
    text to train on ("['Ein', 'Hund']", "True")."""
    text = row[lang]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ValueError(f"{json.dumps(lang)} is a JSON {_json_type(text)}, not a string (the sentence) or null")
    return text


def _iter_jsonl(path: Path, src_lang: str, tgt_lang: str, on_decode_error: str) -> Iterator[tuple[str, str]]:
    """Pairs of a JSON-lines file, read line by line (not through ``datasets``) so that an error can
    name its line and bytes are decoded as in the other text formats; blank lines are skipped."""
    for number, line in enumerate(iter_lines(path, on_decode_error=on_decode_error), start=1):
        if not line.strip():
            continue
        try:
            pair = _jsonl_pair(line, src_lang, tgt_lang)
        except ValueError as e:
            raise DataError(f"{path}:{number}: {e}") from e
        yield pair


def iter_split(
    data_cfg: Mapping, split: str, chunk_size: int = CHUNK_SIZE
) -> Iterator[tuple[list[str], list[str]]]:
    """Raw ``(src, tgt)`` sentences of ``split`` (our name: train, val, test...) of the corpus, in
    chunks of up to ``chunk_size`` pairs, read as they are needed: text, TSV and JSON-lines files line
    by line, hub datasets through ``datasets`` (memory-mapped Arrow, or a stream)."""
    source = _source(data_cfg)
    src_lang, tgt_lang = _require(data_cfg, "src_lang"), _require(data_cfg, "tgt_lang")
    if source == "hub":
        ds, origin = _open_hub(data_cfg, split)
        yield from iter_dataset_pairs(ds, src_lang, tgt_lang, origin=origin, chunk_size=chunk_size)
        return
    on_decode_error = data_cfg.get("on_decode_error") or "error"
    paths = _file_paths(data_cfg, split)
    fmt = _format(data_cfg)
    if fmt == "jsonl":
        pairs = _iter_jsonl(paths[0], src_lang, tgt_lang, on_decode_error)
    elif fmt == "tsv":
        pairs = _iter_tsv(paths[0], on_decode_error)
    else:
        pairs = iter_parallel_text(paths[0], paths[1], on_decode_error=on_decode_error)
    yield from _chunked(pairs, chunk_size)


def load_split(data_cfg: Mapping, split: str) -> tuple[list[str], list[str]]:
    """All of ``iter_split`` in two aligned lists (for dev and test sets; training streams)."""
    return _concat(iter_split(data_cfg, split))


def shared_hub_split(data_cfg: Mapping, split_a: str, split_b: str) -> str | None:
    """The hub split (with its slice, e.g. ``train[:-1000]``) two of our splits of a hub corpus both
    read, when they read the same one; None when they differ or the corpus is not a hub dataset."""
    if _source(data_cfg) != "hub":
        return None
    hub_a, hub_b = _hub_split(data_cfg, split_a), _hub_split(data_cfg, split_b)
    return hub_a if hub_a == hub_b else None


def shared_files(data_cfg: Mapping, split_a: str, split_b: str) -> list[Path] | None:
    """The files two splits of a local corpus (data=files or multi30k) are both read from, when they
    are the same files; None when they differ or the corpus is a hub dataset."""
    if _source(data_cfg) == "hub":
        return None
    paths_a, paths_b = _file_paths(data_cfg, split_a), _file_paths(data_cfg, split_b)
    if all(same_file(a, b) for a, b in zip(paths_a, paths_b, strict=True)):
        return paths_a
    return None


def _file_identity(path: Path) -> dict:
    """A file's path, size and modification time: they change when it is edited (hashing the
    contents would read a whole corpus on every run)."""
    try:
        stat = path.stat()
    except FileNotFoundError as e:
        raise DataError(f"{path}: no such file") from e  # as the readers say it
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _local_dataset_files(name: str) -> list[Path] | None:
    """The files of a hub dataset given as a local path (a folder or a file), as ``datasets`` reads
    them (hidden files and folders skipped); None for a name on the hub."""
    path = _resolve(name)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return None
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))


def split_identity(data_cfg: Mapping, split: str) -> dict:
    """What ``split`` is read from, as plain JSON-able data: files with their sizes and modification
    times, or the hub coordinates (plus the files, for a dataset in a local folder). Equal identities
    mean equal raw sentences, except for a hub name whose dataset changed on the hub when no
    `data.revision` pins it (the cache key must not need the network)."""
    source = _source(data_cfg)
    if source == "hub":
        name = _require(data_cfg, "name")
        identity = {"source": source, "name": name, "config": data_cfg.get("config") or None,
                    "split": _hub_split(data_cfg, split)}
        if data_cfg.get("revision"):  # only when set: caches of unpinned datasets keep their keys
            identity["revision"] = str(data_cfg["revision"])
        local = _local_dataset_files(name)
        return identity if local is None else {**identity, "files": [_file_identity(p) for p in local]}
    files = [_file_identity(path) for path in _file_paths(data_cfg, split)]
    return {"source": source, "format": _format(data_cfg), "files": files}
