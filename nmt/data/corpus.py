"""Loading one split of a parallel corpus as two aligned lists of raw sentences.

The ``data`` config section picks where sentences come from (``data.source``):

- ``multi30k``: the Multi30k files under ``data.root`` (downloaded when missing);
- ``hub``: a Hugging Face dataset (``data.name``, ``data.config``, ``data.splits``);
- ``files``: local files (``data.files`` maps split -> path, ``data.format`` is text, tsv or jsonl).

Every loader returns ``(src, tgt)`` untouched (no stripping or filtering: that is ``cleaning``'s job),
and ``split_identity`` describes what a split was read from so caches can tell when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nmt.data.multi30k import DEFAULT_URL, ensure_multi30k, multi30k_file
from nmt.data.readers import read_lines, read_parallel_text
from nmt.errors import ConfigError, DataError

SOURCES = ("multi30k", "hub", "files")
FILE_FORMATS = ("text", "tsv", "jsonl")


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


def pairs_from_dataset(
    ds, src_lang: str, tgt_lang: str, *, origin: str = "dataset"
) -> tuple[list[str], list[str]]:
    """Sentence pairs of a ``datasets.Dataset``.

    Accepts the hub's usual shape (a ``translation`` column of ``{lang: text}``, as in wmt14 or
    opus_books) and the flat one (one column per language). ``origin`` names the data in errors.
    """
    if "translation" in ds.column_names:
        feature = ds.features["translation"]
        present = list(getattr(feature, "languages", None) or feature)
        prefix = "translation."
        ds = ds.select_columns(["translation"]).flatten()
    else:
        present, prefix = list(ds.column_names), ""
    missing = [lang for lang in (src_lang, tgt_lang) if lang not in present]
    if missing:
        raise DataError(f"{origin}: no {', '.join(missing)} text; languages present: {', '.join(present)}")
    columns = ds.select_columns([prefix + src_lang, prefix + tgt_lang]).to_dict()
    src, tgt = columns[prefix + src_lang], columns[prefix + tgt_lang]
    # Missing values become empty strings, which cleaning then drops as empty pairs.
    return ["" if s is None else str(s) for s in src], ["" if t is None else str(t) for t in tgt]


def _load_hub(cfg: Mapping, split: str) -> tuple[list[str], list[str]]:
    import datasets  # slow to import; only hub and jsonl corpora need it

    name = _require(cfg, "name")
    hub_split = _hub_split(cfg, split)
    try:
        ds = datasets.load_dataset(name, cfg.get("config") or None, split=hub_split)
    except Exception as e:  # network, authentication, unknown name: all mean "cannot get it"
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise DataError(f"cannot load hub dataset {name} (split {hub_split}): {reason}") from e
    return pairs_from_dataset(ds, cfg["src_lang"], cfg["tgt_lang"], origin=f"{name}[{hub_split}]")


def _hub_split(cfg: Mapping, split: str) -> str:
    splits = cfg.get("splits")
    return split if splits is None else str(_lookup_split(splits, split, "data.splits"))


def _read_tsv(path: Path, on_decode_error: str) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    for number, line in enumerate(read_lines(path, on_decode_error=on_decode_error), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected 'source<TAB>target', found {len(fields)} fields")
        src.append(fields[0])
        tgt.append(fields[1])
    return src, tgt


def _read_jsonl(path: Path, src_lang: str, tgt_lang: str) -> tuple[list[str], list[str]]:
    import datasets

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        ds = datasets.load_dataset("json", data_files=str(path), split="train")
    except datasets.exceptions.DatasetGenerationError as e:
        reason = (str(e.__cause__ or e).splitlines() or ["parse error"])[0]
        raise DataError(f"{path}: not valid JSON lines ({reason})") from e
    return pairs_from_dataset(ds, src_lang, tgt_lang, origin=str(path))


def load_split(data_cfg: Mapping, split: str) -> tuple[list[str], list[str]]:
    """Raw ``(src, tgt)`` sentences of ``split`` (our name: train, val, test...) of the corpus."""
    source = _source(data_cfg)
    if source == "hub":
        return _load_hub(data_cfg, split)
    on_decode_error = data_cfg.get("on_decode_error") or "error"
    paths = _file_paths(data_cfg, split)
    fmt = _format(data_cfg)
    if fmt == "tsv":
        return _read_tsv(paths[0], on_decode_error)
    if fmt == "jsonl":
        return _read_jsonl(paths[0], data_cfg["src_lang"], data_cfg["tgt_lang"])
    return read_parallel_text(paths[0], paths[1], on_decode_error=on_decode_error)


def split_identity(data_cfg: Mapping, split: str) -> dict:
    """What ``split`` is read from, as plain JSON-able data: files with their sizes and
    modification times, or the hub coordinates. Equal identities mean equal raw sentences."""
    source = _source(data_cfg)
    if source == "hub":
        return {
            "source": source,
            "name": _require(data_cfg, "name"),
            "config": data_cfg.get("config") or None,
            "split": _hub_split(data_cfg, split),
        }
    files = []
    for path in _file_paths(data_cfg, split):
        try:
            stat = path.stat()
        except OSError as e:
            raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
        files.append({"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {"source": source, "format": _format(data_cfg), "files": files}
