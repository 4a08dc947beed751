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

The checkpoint is read with the notebook's own loader, torch.load(..., weights_only=True,
mmap=True): a pickle that would run code is refused, never run. It is checked against params.json
as the notebook checks it: a damaged file, an HTML page saved under the checkpoint's name, or a
params.json that does not fit the weights is refused with a message naming the file, key or tensor.

The checkpoint is memory-mapped and the kept tensors are written straight from
the mapping, so the process needs about the size of the kept tensors in
*reclaimable page cache* and almost no anonymous memory: truncating the 8B
works on a machine with far less than 16 GB.

SRC is only read. DST must not be SRC (however spelled) and must be empty
unless --force; the free space is checked before anything is written; DST is
written as *.tmp files renamed into place at the end, so a full disk or an
interrupt never leaves a half-written file under a real name.

Usage:
    python scripts/truncate_checkpoint.py SRC DST --layers N [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from safe_write import (DiskSpaceError, check_free_space, cleaned_up_on_failure, copy_file, is_disk_full, make_parents,
                        save_tensors, write_failure_message, write_text)

if TYPE_CHECKING:  # torch and tqdm stay lazy: user errors are answered instantly, without them
    import torch

CHECKPOINT_NAME = "consolidated.00.pth"
PARAMS_NAME = "params.json"
# Copied as they are when SRC has them; the notebook falls back to the tokenizer
# inside the llama-models package when a folder has no tokenizer.model.
TOKENIZER_NAMES = ("tokenizer.model", "tokenizer_config.json")
OUTPUT_NAMES = (CHECKPOINT_NAME, PARAMS_NAME, *TOKENIZER_NAMES)
TMP_SUFFIX = ".tmp"
ZIP_OVERHEAD = 2**20  # torch.save's zip headers and 64-byte alignment, generously

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


def load_source(src: Path, n_keep: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """SRC's tensors, memory-mapped read-only, checked against its params.json; and the keys to keep.

    The loading and the checks are the notebook's own (llama3_files: load_checkpoint_file, read_params, Config,
    check_checkpoint): torch.load(..., weights_only=True, mmap=True), so a pickle that would run code is
    refused without running it, and an HTML page, a truncated file or a params.json that does not fit the
    weights ends in a message that names the file, the key or the tensor; so does a NaN or an infinity in a
    tensor that DST keeps (the values of the layers left out are not read). mmap=True maps the file
    MAP_PRIVATE from a read-only descriptor: the tensors' bytes stay on disk (page cache), SRC cannot be
    written, and nothing is read until used.
    """
    from llama3_files import Config, InputError, check_checkpoint, check_values, load_checkpoint_file, read_params

    path = src / CHECKPOINT_NAME
    try:
        cfg = Config.from_params(read_params(src))
        state = load_checkpoint_file(path)
        keys = select_keys(state, n_keep, cfg.n_layers, path)  # the layers first: the likeliest mismatch
        check_checkpoint(state, cfg, str(path), values=False)
        check_values(state, str(path), keys)  # the tensors DST gets: the save reads them next, from the page cache
    except InputError as exc:
        raise TruncateError(str(exc)) from None
    return state, keys


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


def save_state(state: dict[str, torch.Tensor], path: Path, total_bytes: int, progress: bool) -> None:
    """torch.save STATE to PATH, with a progress bar on stderr, then fsync (safe_write.save_tensors)."""
    from tqdm import tqdm

    # disable=None hides the bar when stderr is not a terminal (logs, tests).
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="write", file=sys.stderr,
              disable=None if progress else True, leave=False) as bar:
        save_tensors(state, path, bar)


# --------------------------------------------------------------------------- the job
def truncate_checkpoint(src: str | Path, dst: str | Path, n_keep: int, force: bool = False,
                        progress: bool = False) -> Summary:
    """Write the first N_KEEP layers of the Meta folder SRC into the folder DST (see the module doc)."""
    src, dst = Path(src), Path(dst)
    params = check_source(src)
    n_layers = params["n_layers"]
    check_layers(n_keep, n_layers)
    check_destination(src, dst, force)

    state, keys = load_source(src, n_keep)
    kept, cloned = compact(state, keys)
    summary = Summary(
        kept_layers=n_keep, total_layers=n_layers, kept_keys=keys,
        kept_bytes=sum(t.numel() * t.element_size() for t in kept.values()),
        total_bytes=sum(t.numel() * t.element_size() for t in state.values()),
        cloned_keys=cloned,
        copied_files=[name for name in TOKENIZER_NAMES if (src / name).is_file()],
        ignored_files=sorted(p.name for p in src.iterdir() if p.name not in OUTPUT_NAMES),
    )

    # The new files are complete before the old ones (with --force) are replaced: no credit for those.
    needed = summary.kept_bytes + ZIP_OVERHEAD + sum((src / name).stat().st_size
                                                     for name in (PARAMS_NAME, *summary.copied_files))
    check_free_space(dst, needed, f"the first {n_keep} layers of {src / CHECKPOINT_NAME}")

    created = make_parents(dst / CHECKPOINT_NAME)  # DST and its missing parents, removed again on failure
    written = [CHECKPOINT_NAME, PARAMS_NAME, *summary.copied_files]
    tmp = {name: dst / (name + TMP_SUFFIX) for name in written}
    with cleaned_up_on_failure(tmp.values(), created):
        # Everything goes to *.tmp first and is renamed at the very end: an
        # interrupted run never leaves a half-written file under a real name.
        save_state(kept, tmp[CHECKPOINT_NAME], summary.kept_bytes, progress)
        write_text(tmp[PARAMS_NAME], truncated_params_text((src / PARAMS_NAME).read_text(encoding="utf-8"), n_keep))
        for name in summary.copied_files:
            copy_file(src / name, tmp[name])
        # The checkpoint last: a folder with the new consolidated.00.pth is complete.
        for name in reversed(written):
            os.replace(tmp[name], dst / name)

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
    except DiskSpaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permissions: the message says it, a traceback would not help
        if is_disk_full(exc):
            print(f"error: {write_failure_message(exc, args.dst)}", file=sys.stderr)
        else:
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
