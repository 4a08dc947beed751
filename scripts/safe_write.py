"""Output files written safely, for the scripts that write checkpoints.

The scripts that write a model folder (truncate_checkpoint.py, convert_hf_checkpoint.py,
prepare_demo_model.py, make_tiny_checkpoint.py, benchmark_memory.py --make-fake) share these rules:

  * the free space is checked before anything is written (shutil.disk_usage against the bytes to write),
    and a shortfall is refused with both numbers;
  * every file is written under a temporary name and renamed into place only when it is complete, so an
    interrupted run or a full disk never leaves a half-written file under a real name, and the temporary
    files (and the folders the run created) are removed again (cleaned_up_on_failure);
  * a write that fails anyway (the disk filled up meanwhile) ends in one clear message that names the file.

torch.save turns the OSError of a failed write into its own RuntimeError ("unexpected pos ...", "file
write failed"); save_tensors() writes through a file object that keeps the real cause and raises it.

save_tensors_in_place() writes a torch.save file whose tensors are made one at a time, straight into the
file's pages (quantize_checkpoint.py): the process never holds them all, nor a copy of the file.

Usage (from a script in scripts/):
    from safe_write import (DiskSpaceError, check_free_space, cleaned_up_on_failure, make_parents, save_tensors,
                            write_failure_message)
    check_free_space(dst, n_bytes, "the checkpoint")     # raises DiskSpaceError, nothing written yet
    with cleaned_up_on_failure([tmp], created=make_parents(dst / "consolidated.00.pth")):
        save_tensors(state, tmp)                          # raises the write's own OSError
        os.replace(tmp, dst / "consolidated.00.pth")
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import struct
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator

if TYPE_CHECKING:  # torch stays lazy: scripts answer argument errors without importing it
    import torch

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
WRITE_CHUNK = 64 * 2**20  # large records are written in slices of this size, so that a progress bar moves


class DiskSpaceError(Exception):
    """Not enough free space for the output; raised before anything is written."""


def human_size(n_bytes: int) -> str:
    """1.23 GB, 45.6 MB, 7.8 kB or 12 B (decimal units, like file managers and `df -H`)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes} B"


def free_space(folder: Path) -> int:
    """Free bytes (for this user) on the file system FOLDER is on, or will be on once created."""
    probe = Path(os.path.abspath(folder))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(folder: Path, needed: int, what: str, shown: str | None = None) -> None:
    """Raise DiskSpaceError unless FOLDER's file system has NEEDED bytes free for WHAT (FOLDER shown as SHOWN)."""
    free = free_space(folder)
    if free < needed:
        raise DiskSpaceError(
            f"not enough free disk space in {shown or folder} for {what}: it needs {human_size(needed)} ({needed:,} bytes), "
            f"but only {human_size(free)} ({free:,} bytes) are free. Free some space or choose another "
            "destination; nothing was written")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def write_failure_message(exc: OSError, target: Path) -> str:
    """One line for an OSError raised while writing TARGET (after the temporary files were removed)."""
    what = exc.strerror or str(exc)
    if is_disk_full(exc):
        return (f"{what} while writing {target}: the partly written temporary files were removed and nothing "
                "was written under a real name; free some disk space (or choose another destination) and run again")
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{what}{where} while writing {target}; nothing was written under a real name"


def same_or_inside(path: Path, folder: Path) -> bool:
    """True when PATH is FOLDER or inside it, however either is spelled (symlinks, '..')."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


class TensorWriter:
    """A binary file for torch.save that remembers the exception a write raised, and moves a progress bar.

    torch.save hands each record to write() as a memoryview of the tensor's storage, so wrapping the file
    copies nothing.
    """

    def __init__(self, file: BinaryIO, bar=None) -> None:
        self._file, self._bar = file, bar
        self.error: BaseException | None = None  # what interrupted a write (a full disk, Ctrl-C)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        try:
            for start in range(0, len(view), WRITE_CHUNK):
                chunk = view[start:start + WRITE_CHUNK]
                self._file.write(chunk)
                if self._bar is not None and self._bar.total:
                    # the zip's headers make the file a little larger than the tensors: cap at 100%
                    self._bar.update(min(len(chunk), self._bar.total - self._bar.n))
        except BaseException as exc:
            self.error = exc
            raise
        return len(view)

    def flush(self) -> None:
        self._file.flush()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """torch.save seeks over the bytes it does not write (torch.serialization.skip_data)."""
        try:
            return self._file.seek(offset, whence)
        except BaseException as exc:
            self.error = exc
            raise


def save_tensors(state: dict[str, torch.Tensor], path: Path, bar=None) -> None:
    """torch.save STATE to PATH (a temporary name), then fsync; a failed write raises its own OSError."""
    import torch

    with open(path, "wb") as file:
        writer = TensorWriter(file, bar)
        try:
            torch.save(state, writer)
        except BaseException:
            if writer.error is not None:
                raise writer.error from None
            raise
        file.flush()
        os.fsync(file.fileno())  # a rename must never publish a file whose bytes are still in flight


def save_tensors_in_place(layout: dict[str, tuple[tuple[int, ...], torch.dtype]], path: Path,
                          fill: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """A torch.save file at PATH (a temporary name) of tensors with LAYOUT's names, shapes and dtypes, in its
    order, whose values FILL writes straight into the file; then fsync.

    1. torch.save of empty tensors with torch.serialization.skip_data(): the zip's structure, with the room for
       every tensor's bytes left unwritten (torch.empty only reserves address space: nothing is touched);
    2. posix_fallocate reserves the file's blocks, so that a full disk is an OSError here, not a SIGBUS later;
    3. the file is loaded with mmap=True as a shared mapping, and FILL(tensors) writes each tensor's values in
       place: the pages it writes are the file's page cache, which the kernel writes back and may drop, not
       memory the process holds;
    4. the CRC-32 of each record, which skip_data left at 0, is computed and written, so the zip is valid.
    The result is read like any torch.save file (torch.load, with or without mmap).
    """
    import torch

    skeleton = {name: torch.empty(shape, dtype=dtype) for name, (shape, dtype) in layout.items()}
    with torch.serialization.skip_data():
        save_tensors(skeleton, path)
    del skeleton
    with open(path, "r+b") as file:
        os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
    with torch.serialization.set_default_mmap_options(mmap.MAP_SHARED):
        stored = torch.load(path, mmap=True, weights_only=True)
    if {name: (tuple(t.shape), t.dtype) for name, t in stored.items()} != layout or list(stored) != list(layout):
        raise RuntimeError(f"{path}: torch.save did not keep the tensors as given; cannot fill the file")
    fill(stored)
    # the records data/0, data/1, ... hold the tensors in the order of LAYOUT (checked by their sizes below)
    crcs = {str(key): zlib.crc32(t.reshape(-1).view(torch.uint8).numpy()) for key, t in enumerate(stored.values())}
    sizes = {str(key): t.nbytes for key, t in enumerate(stored.values())}
    del stored
    with zipfile.ZipFile(path) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        if any(archive.getinfo(f"{prefix}/data/{key}").file_size != size for key, size in sizes.items()):
            raise RuntimeError(f"{path}: torch.save's records are not in the order of the tensors; "
                               "cannot write their CRCs")
    patch_zip_crcs(path, {f"{prefix}/data/{key}": crc for key, crc in crcs.items()})
    with open(path, "rb") as file:
        os.fsync(file.fileno())  # the pages written through the mapping, and the CRCs


def patch_zip_crcs(path: Path, crcs: dict[str, int]) -> None:
    """Write the CRC-32 of records written with torch.serialization.skip_data (which leaves 0 there).

    torch's zip writer marks every record with a data descriptor (general purpose flag bit 3): the CRC-32
    is in the descriptor after the data and in the central directory, and 0 in the local header.
    (benchmark_memory.py's fake checkpoint and quantize_checkpoint.py both write their files this way.)
    """
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        start_dir = archive.start_dir
    with open(path, "r+b") as file:
        for name, crc in crcs.items():
            info = infos[name]
            file.seek(info.header_offset + 26)
            name_len, extra_len = struct.unpack("<HH", file.read(4))
            data_end = info.header_offset + 30 + name_len + extra_len + info.compress_size
            file.seek(data_end)
            crc_at = data_end + 4 if file.read(4) == b"PK\x07\x08" else data_end
            file.seek(crc_at)
            file.write(struct.pack("<I", crc))
        offset = start_dir
        while True:  # the central directory's entries
            file.seek(offset)
            entry = file.read(46)
            if entry[:4] != b"PK\x01\x02":
                break
            name_len, extra_len, comment_len = struct.unpack("<HHH", entry[28:34])
            name = file.read(name_len).decode("utf-8")
            if name in crcs:
                file.seek(offset + 16)
                file.write(struct.pack("<I", crcs[name]))
            offset += 46 + name_len + extra_len + comment_len


def write_text(path: Path, text: str) -> None:
    """PATH's new content TEXT, written in full (and fsynced) before the caller renames it into place."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def make_parents(path: Path) -> list[Path]:
    """Create PATH's missing parent folders; returns those it created, deepest first (for remove_empty)."""
    created = []
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    Path(os.path.abspath(path)).parent.mkdir(parents=True, exist_ok=True)
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove FOLDERS (deepest first) that are empty: a failed run leaves no new empty folder behind."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def cleaned_up_on_failure(temporary: Iterable[Path], created: list[Path]) -> Iterator[None]:
    """If the block fails (a full disk, Ctrl-C): delete the TEMPORARY files or folders (read at that moment, so a
    dict's .values() may be passed) and the CREATED folders left empty, then re-raise. Real names stay as they were."""
    try:
        yield
    except BaseException:
        for path in temporary:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        remove_empty(created)
        raise


def copy_file(src: Path, dst: Path) -> None:
    with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
        shutil.copyfileobj(fsrc, fdst)
        fdst.flush()
        os.fsync(fdst.fileno())
