"""Store the matrices of a Meta-format Llama checkpoint folder as int8, with one scale per row.

Meta's Llama 3 8B is 16 GB in bf16; with its matrices in int8 it is 8.6 GB (the embedding stays bf16).
This script writes such a folder, in Meta's layout, for the notebook to read as it reads Meta's:

    DST/consolidated.00.pth     every layer's matrices (attention.wq/wk/wv/wo, feed_forward.w1/w2/w3 .weight)
                                and output.weight as int8, each with its float32 scales, shape (rows,), under
                                the same name + "_scale" (layers.0.attention.wq.weight_scale);
                                tok_embeddings.weight and the norms bit-identical to SRC's
    DST/params.json             SRC's, with "quantization": "int8-packed" added (nothing else changed;
                                "int8" with --layout plain)
    DST/tokenizer.model         copied (and tokenizer_config.json, if SRC has one)

The quantization is per output row: scale = max|w_row| / 127, computed in float32 from SRC's weights
converted to float32, and q = round(w / scale) clamped to [-127, 127]; a row of zeros gets the scale 1.0
(q is 0 there), so that nothing divides by zero. The notebook (llama3_files.Int8Checkpoint) reads each
matrix as q · scale in float32, within scale / 2 (1/254 of its row's largest weight) of SRC's weight. A tied
SRC (no output.weight: the embedding is also the output matrix) gets an output.weight, the int8 copy of its
embedding, while the embedding itself stays exact for the lookup. The format is described in full in
llama3_files' docstring.

Layout (--layout): "packed", the default, stores each int8 matrix with its columns interleaved four by four
(stored column 4k + j is column j·in/4 + k, llama3_files.interleave_columns): the matrix's bytes are then the
notebook's speed-up 7 words, four weights to a 32-bit word, which section 19's compiled decode step reads
straight from the memory-mapped file (notebook_code.use_stored_weights), without the copy that packing would
cost; every matrix's number of columns must be a multiple of 4. "plain" keeps every column in its place
(what this script wrote before; the notebook reads both). Dequantized, the two are the same matrix.

SRC is read with the notebook's own loader and checks (llama3_files): torch.load(..., weights_only=True,
mmap=True), so a pickle that would run code is refused without running it; a damaged file, an HTML page
saved under the checkpoint's name or a params.json that does not fit the weights is refused with a message
naming the file, key or tensor; so is a NaN or an infinity, named with its tensor and where it is, when the
tensor is read (every weight is read to be quantized); and so is a SRC that is already int8, or that comes
as several model-parallel files (the 70B).

Memory: the work streams. Each matrix is read from the memory-mapped SRC a block of rows at a time (16 MiB
of float32), quantized, and written into its place in DST's file, which is itself memory-mapped for writing
(safe_write.save_tensors_in_place): the process holds one block's float32 copies, never a whole tensor's,
nor the output, nor the file. Measured on the ~1 GB fake (python scripts/benchmark_memory.py --make-fake
/tmp/fake1gb --shape 1gb: 0.96 GB of bf16, 0.48e9 parameters), RssAnon of /proc/self/status sampled every
2 ms, 4 runs on 2 cores: peak RssAnon 54 to 97 MiB above its value before the quantization (at most 243 MiB
in all, with Python, torch and the notebook's module), for a DST of 0.61 GB (0.35 GB int8, the embedding's
0.26 GB of bf16); 11 to 13 s. The peak does not grow with the model: a block is 16 MiB whatever its
matrix. The pages read and written are the files' page cache, which the kernel may drop.

SRC is only read. DST must not be SRC (however spelled) and must be empty unless --force; the free space is
checked before anything is written; DST is written as *.tmp files renamed into place at the end, so a full
disk or an interrupt never leaves a half-written file under a real name.

Usage:
    python scripts/quantize_checkpoint.py SRC DST [--layout packed|plain] [--force]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from safe_write import (DiskSpaceError, check_free_space, cleaned_up_on_failure, copy_file, human_size, is_disk_full,
                        make_parents, save_tensors_in_place, write_failure_message, write_text)
from truncate_checkpoint import (CHECKPOINT_NAME, OUTPUT_NAMES, PARAMS_NAME, SHARD_PATTERN, TMP_SUFFIX,
                                 TOKENIZER_NAMES, ZIP_OVERHEAD, TruncateError, check_destination)

if TYPE_CHECKING:  # torch, tqdm and llama3_files (which imports torch) stay lazy: user errors are answered instantly
    import torch

BLOCK_BYTES = 16 * 2**20  # the float32 bytes of the rows quantized at a time
ROW_ERROR_BOUND = 1 / 254  # |q · scale - w| <= scale / 2 = max|w_row| / 254
LAYOUTS = {"packed": "int8-packed", "plain": "int8"}  # --layout -> params.json's "quantization"


class QuantizeError(Exception):
    """A failure with a message meant for the user (printed without a traceback)."""


@dataclass
class Summary:
    """What quantize_checkpoint() wrote."""

    quantized: list[str]  # DST's int8 matrices
    kept: list[str]  # DST's tensors stored as in SRC
    tied: bool  # SRC has no output.weight: DST's is the int8 copy of tok_embeddings.weight
    source_bytes: int  # SRC's tensors
    output_bytes: int  # DST's tensors: int8 matrices, their scales, the kept tensors
    source_dtypes: list[str]
    quantization: str = LAYOUTS["packed"]  # params.json's "quantization": "int8-packed" or "int8" (LAYOUTS)
    max_error: float = 0.0  # the largest |q · scale - w| / max|w_row| over every row of every matrix
    max_error_name: str = ""
    seconds: float = 0.0
    copied_files: list[str] = field(default_factory=list)  # besides the checkpoint and params.json
    ignored_files: list[str] = field(default_factory=list)  # in SRC, not part of the output
    removed_files: list[str] = field(default_factory=list)  # stale outputs in DST removed by --force
    other_dst_files: list[str] = field(default_factory=list)  # not ours, left alone in DST


# --------------------------------------------------------------------------- the quantization
def quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale): W's rows as int8 numbers and one float32 scale per row, W ≈ q · scale[:, None].

    scale = max|w_row| / 127 in float32 (a row of zeros: 1.0), q = round(w / scale) clamped to [-127, 127].
    A NaN or an infinity in a row makes its scale NaN or inf: the caller checks the scales.
    """
    import torch

    w = w.float()
    scale = torch.maximum(w.amax(dim=1), -w.amin(dim=1)) / 127  # max|w_row| without a copy of |w|
    scale = torch.where(scale == 0, 1.0, scale)  # a row of zeros (or too small to scale): q is 0 there
    q = (w / scale[:, None]).round_().clamp_(-127, 127).to(torch.int8)
    return q, scale


def fill_tensors(stored: dict[str, torch.Tensor], state: dict[str, torch.Tensor], where: str,
                 summary: Summary, progress: bool) -> None:
    """Write DST's tensors into STORED (the output file's memory-mapped tensors), reading SRC's STATE.

    A quantized matrix is read a block of rows at a time; its NaN or infinity (which makes a row's scale NaN
    or inf) is named as llama3_files.check_values names it. The kept tensors are copied as they are.
    """
    import torch
    from tqdm import tqdm

    from llama3_files import PACKED, SCALE_SUFFIX, first_non_finite, interleave_columns, non_finite_error, row_blocks

    sources = {name: state[name] for name in summary.kept}
    sources |= {name: state.get(name, state["tok_embeddings.weight"]) for name in summary.quantized}
    total = sum(t.numel() * t.element_size() for t in sources.values())
    with tqdm(total=total, unit="B", unit_scale=True, desc="quantize", file=sys.stderr,
              disable=None if progress else True, leave=False) as bar:
        for name in stored:
            if name in summary.kept:
                stored[name].copy_(state[name])  # file pages to file pages
                bar.update(state[name].numel() * state[name].element_size())
            elif name in summary.quantized:
                source, q_out, scale_out = sources[name], stored[name], stored[name + SCALE_SUFFIX]
                for start, block in row_blocks(source, BLOCK_BYTES * source.element_size() // 4):
                    w = block.float()  # the block's float32 copy (the block itself when SRC is float32)
                    q, scale = quantize_rows(w)
                    if not torch.isfinite(scale).all():
                        what, (row, col) = first_non_finite(block)
                        raise QuantizeError(str(non_finite_error(name if name in state else "tok_embeddings.weight",
                                                                 "", where, what, f" at {[start + row, col]}")))
                    q_out[start:start + len(q)] = interleave_columns(q) if summary.quantization == PACKED else q
                    scale_out[start:start + len(q)] = scale
                    error = q.float().mul_(scale[:, None]).sub_(w).abs_().amax(dim=1) / (127 * scale)
                    if (worst := error.max().item()) > summary.max_error:
                        summary.max_error, summary.max_error_name = worst, name
                    bar.update(block.numel() * block.element_size())


# --------------------------------------------------------------------------- checks
def check_source(src: Path) -> None:
    """SRC is a single-file Meta folder."""
    if not src.is_dir():
        raise QuantizeError(f"source folder {src} does not exist or is not a directory")
    missing = [name for name in (PARAMS_NAME, CHECKPOINT_NAME) if not (src / name).is_file()]
    if missing:
        raise QuantizeError(f"source folder {src} has no {' and no '.join(missing)} "
                            f"(a Meta checkpoint folder holds {CHECKPOINT_NAME} and {PARAMS_NAME})")
    shards = sorted(p.name for p in src.iterdir() if SHARD_PATTERN.fullmatch(p.name))
    if len(shards) > 1:
        raise QuantizeError(f"source folder {src} holds {len(shards)} shards ({shards[0]} ... {shards[-1]}); "
                            "quantizing model-parallel shards is not supported by this script: "
                            "it quantizes single-file checkpoints (8B-sized) only")


def load_source(src: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """SRC's tensors, memory-mapped read-only and checked as the notebook checks them; and its params.

    The loading and the checks are the notebook's own (llama3_files: read_params, Config, load_checkpoint,
    check_checkpoint without its values check): the tensors kept as they are have their values checked here,
    the matrices when they are read to be quantized.
    """
    from llama3_files import (Config, InputError, Int8Checkpoint, SCALE_SUFFIX, check_checkpoint, check_values,
                              is_int8_matrix, load_checkpoint, read_params)

    path = src / CHECKPOINT_NAME
    try:
        params = read_params(src)
        if "quantization" in params:
            raise QuantizeError(f'{src / PARAMS_NAME} says "quantization": {json.dumps(params["quantization"])}: '
                                f"{src} is already an int8 checkpoint; quantize the original weights instead")
        cfg = Config.from_params(params)
        state = load_checkpoint(src)
        if isinstance(state, Int8Checkpoint):
            example = next(iter(state.scales)) + SCALE_SUFFIX
            raise QuantizeError(f"{path} holds int8 weights and their scales ({example}, ...): it is already an int8 "
                                "checkpoint; quantize the original weights instead")
        check_checkpoint(state, cfg, str(path), values=False)
        check_values(state, str(path), [name for name in state if not is_int8_matrix(name)])
    except InputError as exc:
        raise QuantizeError(str(exc)) from None
    return state, params


def output_layout(state: dict[str, torch.Tensor], quantization: str = LAYOUTS["packed"]
                  ) -> tuple[dict[str, tuple[tuple[int, ...], torch.dtype]], Summary]:
    """DST's tensors in SRC's order (each matrix followed by its scales; a tied SRC's output.weight last)."""
    import torch

    from llama3_files import INT8_PER_WORD, PACKED, SCALE_SUFFIX, is_int8_matrix

    tied = "output.weight" not in state
    shapes = {name: tuple(t.shape) for name, t in state.items()}
    if tied:
        shapes["output.weight"] = shapes["tok_embeddings.weight"]
    layout, quantized, kept = {}, [], []
    for name, shape in shapes.items():
        if is_int8_matrix(name):
            if quantization == PACKED and shape[1] % INT8_PER_WORD:
                raise QuantizeError(f"{name} has {shape[1]} columns, not a multiple of {INT8_PER_WORD}: the packed "
                                    f"layout stores {INT8_PER_WORD} weights to a word; write this model with "
                                    "--layout plain")
            layout[name] = (shape, torch.int8)
            layout[name + SCALE_SUFFIX] = ((shape[0],), torch.float32)
            quantized.append(name)
        else:
            layout[name] = (shape, state[name].dtype)
            kept.append(name)
    summary = Summary(quantized=quantized, kept=kept, tied=tied,
                      source_bytes=sum(t.numel() * t.element_size() for t in state.values()),
                      output_bytes=sum(math.prod(shape) * dtype.itemsize for shape, dtype in layout.values()),
                      source_dtypes=sorted({str(t.dtype).removeprefix("torch.") for t in state.values()}),
                      quantization=quantization)
    return layout, summary


# --------------------------------------------------------------------------- params.json
def quantized_params_text(text: str, quantization: str = LAYOUTS["packed"]) -> str:
    """params.json TEXT with "quantization": QUANTIZATION added as its last key, nothing else changed.

    The entry is added to the text, with the separator SRC's entries use, so key order, spacing and the
    spelling of every other value (1e-05, 500000.0) stay byte for byte as in SRC.
    """
    expected = {**json.loads(text), "quantization": quantization}
    separator, end = re.search(r',(\s*)"', text), re.search(r"\s*}\s*$", text)
    if separator and end:
        entry = f'{separator.group(1)}"quantization": {json.dumps(quantization)}'
        new_text = f"{text[:end.start()]},{entry}{text[end.start():]}"
        try:
            if list(json.loads(new_text).items()) == list(expected.items()):
                return new_text
        except json.JSONDecodeError:
            pass
    return json.dumps(expected, indent=2) + "\n"  # an unusual file: rewritten as JSON


# --------------------------------------------------------------------------- the job
def quantize_checkpoint(src: str | Path, dst: str | Path, force: bool = False, progress: bool = False,
                        layout: str = "packed") -> Summary:
    """Write the int8 copy of the Meta folder SRC into the folder DST (see the module doc), in LAYOUT."""
    start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if layout not in LAYOUTS:
        raise QuantizeError(f"layout {layout!r}: write one of {', '.join(LAYOUTS)}")
    check_source(src)
    check_destination(src, dst, force)

    state, _ = load_source(src)
    tensors, summary = output_layout(state, LAYOUTS[layout])
    summary.copied_files = [name for name in TOKENIZER_NAMES if (src / name).is_file()]
    summary.ignored_files = sorted(p.name for p in src.iterdir() if p.name not in OUTPUT_NAMES)

    # The new files are complete before the old ones (with --force) are replaced: no credit for those.
    needed = summary.output_bytes + ZIP_OVERHEAD + sum((src / name).stat().st_size
                                                       for name in (PARAMS_NAME, *summary.copied_files))
    check_free_space(dst, needed, f"the int8 copy of {src / CHECKPOINT_NAME}")

    created = make_parents(dst / CHECKPOINT_NAME)  # DST and its missing parents, removed again on failure
    written = [CHECKPOINT_NAME, PARAMS_NAME, *summary.copied_files]
    tmp = {name: dst / (name + TMP_SUFFIX) for name in written}
    where = str(src / CHECKPOINT_NAME)
    with cleaned_up_on_failure(tmp.values(), created):
        # Everything goes to *.tmp first and is renamed at the very end: an
        # interrupted run never leaves a half-written file under a real name.
        save_tensors_in_place(tensors, tmp[CHECKPOINT_NAME],
                              lambda stored: fill_tensors(stored, state, where, summary, progress))
        write_text(tmp[PARAMS_NAME], quantized_params_text((src / PARAMS_NAME).read_text(encoding="utf-8"),
                                                           summary.quantization))
        for name in summary.copied_files:
            copy_file(src / name, tmp[name])
        # The checkpoint last: a folder with the new consolidated.00.pth is complete.
        for name in reversed(written):
            os.replace(tmp[name], dst / name)

    # --force: outputs of an earlier run that this run did not write (a tokenizer_config.json SRC
    # does not have, *.tmp left by a killed run) would not belong with the new files.
    for name in OUTPUT_NAMES:
        for stale in ([] if name in written else [dst / name]) + [dst / (name + TMP_SUFFIX)]:
            if stale.is_file():
                stale.unlink()
                summary.removed_files.append(stale.name)
    summary.other_dst_files = sorted(p.name for p in dst.iterdir() if p.name not in OUTPUT_NAMES)
    summary.seconds = time.perf_counter() - start
    return summary


# --------------------------------------------------------------------------- CLI
def report(summary: Summary, dst: Path) -> str:
    tied = " (SRC is tied: output.weight is the int8 copy of tok_embeddings.weight)" if summary.tied else ""
    packed = (", columns interleaved four to a word (the packed layout)"
              if summary.quantization == LAYOUTS["packed"] else "")
    lines = [
        f"quantized {len(summary.quantized)} matrices to int8 with one float32 scale per row{packed}{tied}",
        f"tensors: {human_size(summary.source_bytes)} in SRC ({', '.join(summary.source_dtypes)}) -> "
        f"{human_size(summary.output_bytes)} in DST, {summary.output_bytes / summary.source_bytes:.0%}",
        "kept as stored: " + ", ".join(name for name in summary.kept if not name.startswith("layers."))
        + f" and the layers' {sum(name.startswith('layers.') for name in summary.kept)} norms",
        f"largest round-trip error |q·scale - w|: {summary.max_error:.3%} of its row's largest weight "
        f"({summary.max_error_name}; at most 1/254 = {ROW_ERROR_BOUND:.3%})",
        f"wrote {dst}: " + ", ".join([CHECKPOINT_NAME, f'{PARAMS_NAME} ("quantization": "{summary.quantization}")',
                                      *summary.copied_files]) + f" in {summary.seconds:.1f} s",
    ]
    if "tokenizer.model" not in summary.copied_files:
        lines.append("note: the source has no tokenizer.model, so neither has the destination")
    if summary.ignored_files:
        lines.append("ignored (not part of the int8 model): " + ", ".join(summary.ignored_files))
    if summary.removed_files:
        lines.append("removed stale files: " + ", ".join(summary.removed_files))
    if summary.other_dst_files:
        lines.append("left alone in the destination: " + ", ".join(summary.other_dst_files))
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Store the matrices of a Meta-format Llama checkpoint folder (consolidated.00.pth + "
        "params.json + tokenizer.model) as int8 with one scale per row; the embedding and the norms stay as stored.",
    )
    parser.add_argument("src", type=Path, help="source folder (Meta's layout); only read")
    parser.add_argument("dst", type=Path, help="destination folder (created; must not exist or be empty)")
    parser.add_argument("--layout", choices=tuple(LAYOUTS), default="packed",
                        help="packed (the default): each matrix's columns interleaved four by four, so that "
                        "section 19's compiled step reads its bytes as 32-bit words without a copy; plain: every "
                        "column in its place")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing non-empty destination, replacing this script's files there")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        summary = quantize_checkpoint(args.src, args.dst, force=args.force, progress=True, layout=args.layout)
    except (QuantizeError, TruncateError) as exc:  # TruncateError: the destination check shared with truncate
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
