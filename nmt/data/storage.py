"""Token ids of a whole corpus without Python lists: a flat int32 array plus (N + 1,) offsets.

The data cache is an uncompressed `.npz` (a zip of `.npy` files stored as they are), so an array in
it can be memory-mapped in place: `memmap_npz_member` finds where the member's data starts and maps
it read-only. The operating system then pages ids in as batches need them, and a corpus of any size
costs only its offsets in memory (8 bytes a sentence and side).
"""

import itertools
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

LOCAL_HEADER_SIZE = 30  # fixed part of a zip local file header


def memmap_npz_member(path: Path, name: str) -> np.ndarray:
    """Array `name` of the `.npz` file `path`, memory-mapped read-only (ValueError if compressed)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{name} is compressed in {path}; cannot memory-map it")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(LOCAL_HEADER_SIZE)
        name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
        f.seek(info.header_offset + LOCAL_HEADER_SIZE + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if fortran or dtype.hasobject:
        raise ValueError(f"{name} in {path} is not a plain C-ordered array")
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)  # np.memmap refuses empty files
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


class NpzWriter:
    """Writes an uncompressed `.npz` member by member, so an array kept in a file on disk (the ids of
    a large corpus) is copied into it in blocks instead of being loaded: `np.load` and
    `memmap_npz_member` read the result."""

    def __init__(self, fileobj: BinaryIO):
        self._zip = zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    def add_file(self, name: str, path: Path, dtype: np.dtype) -> None:
        """A 1-D array of `dtype` whose raw bytes are the whole content of the file `path`."""
        dtype = np.dtype(dtype)
        header = np.lib.format.header_data_from_array_1_0(np.empty(0, dtype=dtype))
        header["shape"] = (path.stat().st_size // dtype.itemsize,)
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member, open(path, "rb") as data:
            np.lib.format.write_array_header_2_0(member, header)
            shutil.copyfileobj(data, member, 1 << 20)

    def close(self) -> None:
        self._zip.close()


class RaggedIds:
    """A read-only sequence of id arrays: `ids[i]` is sentence i's ids, a view into `flat`."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, np.asarray(offsets, dtype=np.int64)  # (total,), (N + 1,)

    @classmethod
    def from_lists(cls, seqs: list[list[int]]) -> "RaggedIds":
        """Id lists packed into one int32 array and their offsets."""
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)  # (N + 1,)
        np.cumsum([len(s) for s in seqs], out=offsets[1:])
        flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other) -> bool:
        return len(self) == len(other) and all(list(a) == list(b) for a, b in zip(self, other, strict=True))

    __hash__ = None

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (N,)


def id_lengths(seqs) -> np.ndarray:
    """(N,) lengths of a list of id lists or of RaggedIds (without touching the ids of the latter)."""
    if isinstance(seqs, RaggedIds):
        return seqs.lengths()
    return np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
