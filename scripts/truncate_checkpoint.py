"""Keep only the first N layers of a Meta-format Llama checkpoint folder.

Meta's Llama 3 8B checkpoint is 16 GB (bf16). Its first layers alone are enough
to follow the tutorial step by step on a small machine: the hidden state after
N layers is exactly the full model's hidden state after N layers (but the
logits of the truncated model are not the full model's: it is a different,
shallower model). This script writes such a folder, exactly:

    DST/consolidated.00.pth     tok_embeddings, norm, output (when present) and
                                layers 0..N-1, every tensor bit-identical to SRC's
    DST/params.json             SRC's, with "n_layers": N (nothing else changed)
    DST/tokenizer.model         copied (and tokenizer_config.json, if SRC has one)

Any other file of SRC (checklist.chk, licenses, ...) is ignored, and named.

The checkpoint is memory-mapped (torch.load(..., mmap=True)) and the kept
tensors are written straight from the mapping, so the process needs about the
size of the kept tensors in *reclaimable page cache* and almost no anonymous
memory: truncating the 8B works on a machine with far less than 16 GB.
SRC is only read. DST is written as *.tmp files renamed into place at the end.

Usage:
    python scripts/truncate_checkpoint.py SRC DST --layers N [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # torch and tqdm stay lazy: user errors are answered instantly, without them
    import torch

CHECKPOINT_NAME = "consolidated.00.pth"
PARAMS_NAME = "params.json"
# Copied as they are when SRC has them; the notebook falls back to the tokenizer
# inside the llama-models package when a folder has no tokenizer.model.
TOKENIZER_NAMES = ("tokenizer.model", "tokenizer_config.json")
OUTPUT_NAMES = (CHECKPOINT_NAME, PARAMS_NAME, *TOKENIZER_NAMES)
TMP_SUFFIX = ".tmp"
WRITE_CHUNK = 64 * 1024 * 1024

SHARD_PATTERN = re.compile(r"consolidated\.(\d+)\.pth")
LAYER_KEY = re.compile(r"layers\.(\d+)\.")


class TruncateError(Exception):
    """A failure with a message meant for the user (printed without a traceback)."""


@dataclass
class Summary:
    """What truncate_checkpoint() wrote."""

    kept_layers: int
    total_layers: int
    kept_keys: list[str]
    kept_bytes: int
    total_bytes: int
    cloned_keys: list[str] = field(default_factory=list)  # views copied into their own storage
    copied_files: list[str] = field(default_factory=list)  # besides the checkpoint and params.json
    ignored_files: list[str] = field(default_factory=list)  # in SRC, not part of the output
    removed_files: list[str] = field(default_factory=list)  # stale outputs in DST removed by --force
    other_dst_files: list[str] = field(default_factory=list)  # not ours, left alone in DST


# --------------------------------------------------------------------------- checks
def check_source(src: Path) -> dict:
    """SRC's params.json, after checking that SRC is a single-shard Meta folder."""
    if not src.is_dir():
        raise TruncateError(f"source folder {src} does not exist or is not a directory")
    missing = [name for name in (PARAMS_NAME, CHECKPOINT_NAME) if not (src / name).is_file()]
    if missing:
        raise TruncateError(f"source folder {src} has no {' and no '.join(missing)} "
                            f"(a Meta checkpoint folder holds {CHECKPOINT_NAME} and {PARAMS_NAME})")
    shards = sorted(p.name for p in src.iterdir() if SHARD_PATTERN.fullmatch(p.name))
    if len(shards) > 1:
        # The 70B comes as model-parallel shards, each holding a slice of every
        # tensor. The notebook merges them when it reads them; this script only
        # truncates single-file checkpoints (truncating each shard alike would be
        # the way to extend it).
        raise TruncateError(f"source folder {src} holds {len(shards)} shards ({shards[0]} ... {shards[-1]}); "
                            "merging model-parallel shards is not supported by this script: "
                            "it truncates single-file checkpoints (8B-sized) only")
    try:
        params = json.loads((src / PARAMS_NAME).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TruncateError(f"{src / PARAMS_NAME} is not valid JSON: {exc}") from None
    n_layers = params.get("n_layers") if isinstance(params, dict) else None
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
        raise TruncateError(f"{src / PARAMS_NAME} has no positive integer n_layers (got {n_layers!r})")
    return params


def check_layers(n_keep: int, n_layers: int) -> None:
    if not 1 <= n_keep <= n_layers:
        raise TruncateError(f"--layers {n_keep} is out of range: the source has {n_layers} layers "
                            f"(params.json n_layers), so N must be between 1 and {n_layers}")


def check_destination(src: Path, dst: Path, force: bool) -> None:
    if dst.exists() and not dst.is_dir():
        raise TruncateError(f"destination {dst} exists and is not a directory")
    if dst.is_dir() and os.path.samefile(src, dst):
        # With --force this would replace SRC's own files.
        raise TruncateError(f"destination {dst} is the source folder; choose another folder")
    if dst.is_dir() and any(dst.iterdir()) and not force:
        raise TruncateError(f"destination {dst} already exists and is not empty; "
                            "use --force to overwrite the files this script writes there")


# --------------------------------------------------------------------------- params.json
def truncated_params_text(text: str, n_keep: int) -> str:
    """params.json TEXT with n_layers set to N_KEEP and nothing else changed.

    The number is replaced in the text, so key order, spacing and the spelling
    of every other value (1e-05, 500000.0) stay byte for byte as in SRC.
    """
    params = json.loads(text)
    expected = {**params, "n_layers": n_keep}  # same key order
    new_text, count = re.subn(r'("n_layers"\s*:\s*)-?\d+', rf"\g<1>{n_keep}", text)
    if count == 1 and json.loads(new_text) == expected:
        return new_text
    # An unusual file (n_layers spelled oddly, or nested copies): rewrite it as JSON.
    return json.dumps(expected, indent=2) + "\n"


# --------------------------------------------------------------------------- tensors
def layer_index(key: str) -> int | None:
    """The layer number of a key like "layers.12.attention.wq.weight", else None."""
    match = LAYER_KEY.match(key)
    return int(match.group(1)) if match else None


def load_mmap(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, memory-mapped read-only: nothing is read until used."""
    import pickle

    import torch

    try:
        # mmap=True maps the file MAP_PRIVATE from a read-only descriptor: the
        # tensors' bytes stay on disk (page cache) and SRC cannot be written.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise TruncateError(f"cannot read {path} as a PyTorch checkpoint: {exc}") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise TruncateError(f"{path} is not a dict of tensors (Meta's state_dict layout)")
    return state


def select_keys(state: dict[str, torch.Tensor], n_keep: int, n_layers: int, path: Path) -> list[str]:
    """Keys to keep, in SRC's order: every non-layer key and layers 0..N_KEEP-1."""
    found = {i for i in map(layer_index, state) if i is not None}
    if found != set(range(n_layers)):
        held = f"layers {min(found)}..{max(found)} ({len(found)} layers)" if found else "no layers"
        raise TruncateError(f"{path} holds {held} but params.json says n_layers {n_layers}: "
                            "the two files do not belong together")
    return [k for k in state if (i := layer_index(k)) is None or i < n_keep]


def is_compact(tensor: torch.Tensor) -> bool:
    """True when TENSOR is exactly its whole storage (so torch.save writes only its bytes)."""
    return (tensor.storage_offset() == 0
            and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
            and tensor.is_contiguous())


def compact(state: dict[str, torch.Tensor], keys: list[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """{key: tensor} for KEYS, each tensor owning exactly its storage; and the keys that were cloned.

    torch.save writes a tensor's whole storage: a view into a larger storage (a
    slice of a fused weight, or tensors saved as views of one flat buffer) would
    drag the whole storage, dropped layers included, into DST. Such views are
    cloned (into memory, the only copies this script makes). Tensors loaded with
    mmap=True from Meta's files each own their storage already and stay
    memory-mapped, untouched.
    """
    import torch

    kept: dict[str, torch.Tensor] = {}
    cloned: list[str] = []
    for key in keys:
        tensor = state[key]
        if not is_compact(tensor):
            tensor = tensor.clone(memory_format=torch.contiguous_format)
            cloned.append(key)
        kept[key] = tensor
    return kept, cloned


class _ProgressWriter:
    """A binary file that advances a tqdm bar by what torch.save writes through it.

    torch.save hands each record to write() as a memoryview of the storage
    itself (here: of the mapped source file), so wrapping the file copies nothing.
    """

    def __init__(self, file: BinaryIO, bar) -> None:
        self._file, self._bar = file, bar
        self.error: BaseException | None = None  # what interrupted a write (Ctrl-C, disk full)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        try:
            # The 8B's embedding is one 1 GB record: write it in slices (views,
            # no copies) so that the bar moves while it is written.
            for start in range(0, len(view), WRITE_CHUNK):
                chunk = view[start:start + WRITE_CHUNK]
                self._file.write(chunk)
                # The zip headers make the file a little larger than the tensors: cap at 100%.
                self._bar.update(min(len(chunk), self._bar.total - self._bar.n))
        except BaseException as exc:
            self.error = exc
            raise
        return len(view)

    def flush(self) -> None:
        self._file.flush()


def save_state(state: dict[str, torch.Tensor], path: Path, total_bytes: int, progress: bool) -> None:
    """torch.save STATE to PATH, with a progress bar on stderr, then fsync."""
    import torch
    from tqdm import tqdm

    # disable=None hides the bar when stderr is not a terminal (logs, tests).
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="write", file=sys.stderr,
              disable=None if progress else True, leave=False) as bar, path.open("wb") as file:
        writer = _ProgressWriter(file, bar)
        try:
            torch.save(state, writer)
        except BaseException:
            # When a write fails, torch's zip writer still closes the archive and
            # raises its own RuntimeError ("unexpected pos ..."), which would hide
            # the cause: raise the cause (KeyboardInterrupt, OSError) instead.
            if writer.error is not None:
                raise writer.error from None
            raise
        file.flush()
        os.fsync(file.fileno())  # the rename at the end must not publish a file still in flight


# --------------------------------------------------------------------------- the job
def copy_file(src: Path, dst: Path) -> None:
    with src.open("rb") as fsrc, dst.open("wb") as fdst:
        shutil.copyfileobj(fsrc, fdst)
        fdst.flush()
        os.fsync(fdst.fileno())


def truncate_checkpoint(src: str | Path, dst: str | Path, n_keep: int, force: bool = False,
                        progress: bool = False) -> Summary:
    """Write the first N_KEEP layers of the Meta folder SRC into the folder DST (see the module doc)."""
    src, dst = Path(src), Path(dst)
    params = check_source(src)
    n_layers = params["n_layers"]
    check_layers(n_keep, n_layers)
    check_destination(src, dst, force)

    state = load_mmap(src / CHECKPOINT_NAME)
    keys = select_keys(state, n_keep, n_layers, src / CHECKPOINT_NAME)
    kept, cloned = compact(state, keys)
    summary = Summary(
        kept_layers=n_keep, total_layers=n_layers, kept_keys=keys,
        kept_bytes=sum(t.numel() * t.element_size() for t in kept.values()),
        total_bytes=sum(t.numel() * t.element_size() for t in state.values()),
        cloned_keys=cloned,
        copied_files=[name for name in TOKENIZER_NAMES if (src / name).is_file()],
        ignored_files=sorted(p.name for p in src.iterdir() if p.name not in OUTPUT_NAMES),
    )

    created = not dst.exists()
    dst.mkdir(parents=True, exist_ok=True)
    written = [CHECKPOINT_NAME, PARAMS_NAME, *summary.copied_files]
    tmp = {name: dst / (name + TMP_SUFFIX) for name in written}
    try:
        # Everything goes to *.tmp first and is renamed at the very end: an
        # interrupted run never leaves a half-written file under a real name.
        save_state(kept, tmp[CHECKPOINT_NAME], summary.kept_bytes, progress)
        text = truncated_params_text((src / PARAMS_NAME).read_text(encoding="utf-8"), n_keep)
        with tmp[PARAMS_NAME].open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        for name in summary.copied_files:
            copy_file(src / name, tmp[name])
        # The checkpoint last: a folder with the new consolidated.00.pth is complete.
        for name in reversed(written):
            os.replace(tmp[name], dst / name)
    except BaseException:
        for path in tmp.values():
            path.unlink(missing_ok=True)
        if created and not any(dst.iterdir()):
            dst.rmdir()
        raise

    # --force: outputs of an earlier run that this run did not write (a
    # tokenizer_config.json SRC no longer has, *.tmp left by a killed run) would
    # not belong with the new files.
    for name in OUTPUT_NAMES:
        for stale in ([] if name in written else [dst / name]) + [dst / (name + TMP_SUFFIX)]:
            if stale.is_file():
                stale.unlink()
                summary.removed_files.append(stale.name)
    ours = set(OUTPUT_NAMES)
    summary.other_dst_files = sorted(p.name for p in dst.iterdir() if p.name not in ours)
    return summary


# --------------------------------------------------------------------------- CLI
def human_size(n_bytes: int) -> str:
    """1.23 GB or 45.6 MB (decimal units, like file managers and Meta's model cards)."""
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def report(summary: Summary, dst: Path) -> str:
    lines = [
        f"kept {summary.kept_layers} of {summary.total_layers} layers: {len(summary.kept_keys)} tensors, "
        f"{human_size(summary.kept_bytes)} of {human_size(summary.total_bytes)}",
        "non-layer tensors: " + ", ".join(k for k in summary.kept_keys if layer_index(k) is None),
        f"wrote {dst}: " + ", ".join([CHECKPOINT_NAME, f"{PARAMS_NAME} (n_layers {summary.kept_layers})",
                                      *summary.copied_files]),
    ]
    if "tokenizer.model" not in summary.copied_files:
        lines.append("note: the source has no tokenizer.model, so neither has the destination")
    if summary.cloned_keys:
        lines.append(f"note: {len(summary.cloned_keys)} tensors were views into a larger storage "
                     "and were copied into their own")
    if summary.ignored_files:
        lines.append("ignored (not part of the truncated model): " + ", ".join(summary.ignored_files))
    if summary.removed_files:
        lines.append("removed stale files: " + ", ".join(summary.removed_files))
    if summary.other_dst_files:
        lines.append("left alone in the destination: " + ", ".join(summary.other_dst_files))
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Keep only the first N layers of a Meta-format Llama checkpoint folder "
        "(consolidated.00.pth + params.json + tokenizer.model), tensors bit-identical.",
    )
    parser.add_argument("src", type=Path, help="source folder (Meta's layout); only read")
    parser.add_argument("dst", type=Path, help="destination folder (created; must not exist or be empty)")
    parser.add_argument("--layers", type=int, required=True, metavar="N",
                        help="number of layers to keep: layers 0..N-1 (1 to the source's n_layers)")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing non-empty destination, replacing this script's files there")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        summary = truncate_checkpoint(args.src, args.dst, args.layers, force=args.force, progress=True)
    except TruncateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permissions: the message says it, a traceback would not help
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; no output file was left half-written", file=sys.stderr)
        return 130
    print(report(summary, args.dst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
