"""Convert a Hugging Face Llama 3 checkpoint to Meta's layout, for the notebook.

Usage:
    python scripts/convert_hf_checkpoint.py HF_DIR DST [--tokenizer PATH] [--force]

HF_DIR is a folder as published on the Hugging Face hub: config.json plus
model.safetensors, or model-0000x-of-0000y.safetensors shards with
model.safetensors.index.json.  DST is created and gets what Meta ships and the
notebook reads:

    DST/consolidated.00.pth   Meta's tensor names, in the dtype stored in HF_DIR
    DST/params.json           Meta's fields, derived from config.json
    DST/tokenizer.model       only when one is found (--tokenizer PATH, or
                              HF_DIR/original/tokenizer.model)

The conversion is bit-exact: every tensor is either copied or has its rows
reordered, nothing is recomputed or cast.

Two RoPE layouts.  RoPE rotates the query and key vector of each head in 2-D
planes.  Meta's reference treats the adjacent pairs (x[2i], x[2i+1]) as complex
numbers; Hugging Face's LlamaModel rotates the pairs (x[i], x[i + head_dim/2])
("rotate_half").  The two give the same attention scores if the output rows of
wq and wk are reordered, so Hugging Face's convert_llama_weights_to_hf.py
permutes them, head by head:

    permute(w, n_heads) = w.view(n_heads, head_dim // 2, 2, dim).transpose(1, 2).reshape(n_heads * head_dim, dim)

(Meta row 2i of a head becomes row i, row 2i+1 becomes row i + head_dim/2; wk
with n_kv_heads).  This script applies the inverse, view(n_heads, 2,
head_dim // 2, dim).transpose(1, 2).  wv, wo and the rest are not rotated, so
their rows are in the same order in both layouts.

Bad input ends in one `error: ...` line (exit status 2) that names the file or the key: a config.json
that is missing, not JSON (an HTML page: a failed download) or lacks a key; a safetensors file that is an
HTML page or cut short; a tensor whose shape does not fit config.json.  DST must not be HF_DIR or inside
it (however spelled: symlinks and '..' are resolved), and must not exist unless --force.  The free space
for the checkpoint and the scratch files is checked before anything is written (exit status 1), and
everything is written into a temporary sibling folder renamed into place at the end: a full disk or an
interrupt leaves no half-written file under a real name.

Memory.  torch.save needs one dict holding every tensor, so the tensors are
never loaded: safetensors' safe_open returns tensors that are memory-mapped
views of the shard files, and torch.save streams them from the page cache into
the output file.  The only tensors that must be materialised are the reordered
wq and wk (8.5% of the 8B and of the 70B): they are written into scratch files
mapped with torch.from_file(shared=True), so they too live in the page cache,
which the kernel can write back and evict, instead of in the process's private
memory.  That private memory thus stays at what Python and torch need (about
150 MB) whatever the size of the model; holding all tensors in memory would
need the whole model (16 GB for the 8B), and the q/k copies alone 1.3 GB (8B)
or 12 GB (70B).  The price: the scratch files take that much disk space next to
DST until the conversion ends, and the resident set size that top or ps show
counts the mapped file pages the process has touched (up to the size of the
model), although that memory is reclaimable cache.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from safe_write import (DiskSpaceError, check_free_space, cleaned_up_on_failure, copy_file, human_size, is_disk_full,
                        make_parents, same_or_inside, save_tensors, write_failure_message, write_text)
from verify_checkpoint import looks_like_markup

CHECKPOINT_NAME = "consolidated.00.pth"
PARAMS_NAME = "params.json"
TOKENIZER_NAME = "tokenizer.model"
LLAMA3_VOCAB_SIZE = 128256
ZIP_OVERHEAD = 2**20  # torch.save's zip headers and 64-byte alignment, and params.json, generously

# Meta's published (multiple_of, ffn_dim_multiplier) for (dim, FFN hidden size),
# from the params.json files in llama_models/sku_list.py.  Other pairs would
# reproduce the same hidden size too; these keep params.json identical to Meta's.
KNOWN_FFN_PARAMS: dict[tuple[int, int], tuple[int, float | None]] = {
    (4096, 14336): (1024, 1.3),  # Llama 3 / 3.1 8B
    (8192, 28672): (4096, 1.3),  # Llama 3 / 3.1 / 3.3 70B
    (16384, 53248): (4096, 1.2),  # Llama 3.1 405B
    (2048, 8192): (256, 1.5),  # Llama 3.2 1B
    (3072, 8192): (256, 1.0),  # Llama 3.2 3B
}

# The "llama3" RoPE scaling that Meta's reference hard-codes in
# llama_models.llama3.model.apply_scaling (used when use_scaled_rope is true).
META_ROPE_SCALING = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192}
# Llama 3.2 1B and 3B were published with factor 32 in config.json, which Meta's
# params.json cannot express: it is kept in this extra key (Meta's own name for it
# in llama_models.llama4.args); Meta's Llama 3 reference ignores unknown keys.
ROPE_SCALING_FACTOR_KEY = "rope_scaling_factor"
OTHER_KNOWN_ROPE_FACTORS = (32.0,)

# Buffers that old transformers versions saved next to the weights; RoPE
# frequencies are recomputed from params.json, so they carry nothing to convert.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)

_HF_LAYER_TO_META = {
    "self_attn.q_proj.weight": "attention.wq.weight",
    "self_attn.k_proj.weight": "attention.wk.weight",
    "self_attn.v_proj.weight": "attention.wv.weight",
    "self_attn.o_proj.weight": "attention.wo.weight",
    "mlp.gate_proj.weight": "feed_forward.w1.weight",
    "mlp.down_proj.weight": "feed_forward.w2.weight",
    "mlp.up_proj.weight": "feed_forward.w3.weight",
    "input_layernorm.weight": "attention_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


class ConversionError(Exception):
    """A problem with the input or the destination, reported as `error: ...`."""


def open_safetensors(path: Path):
    """safe_open(PATH), or a ConversionError that names the file and says what it looks like."""
    try:
        return safe_open(path, framework="pt")
    except (SafetensorError, OSError) as exc:
        with path.open("rb") as f:
            kind = looks_like_markup(f.read(4096))
        what = (f"it is {kind}, not model weights: its download failed" if kind
                else "it is truncated or damaged (an interrupted download?)")
        raise ConversionError(f"cannot read {path} as a safetensors file ({exc}): {what}; "
                              "download it again") from None


# --------------------------------------------------------------------------- params.json
def ffn_hidden_dim(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Meta's SwiGLU hidden size (llama_models.llama3.model.FeedForward), same float ops."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * math.ceil(hidden / multiple_of)


def ffn_params(dim: int, intermediate_size: int) -> tuple[int, float | None]:
    """(multiple_of, ffn_dim_multiplier) for which Meta's formula gives INTERMEDIATE_SIZE.

    Meta's params.json stores the FFN size only indirectly.  Known models get
    Meta's own values; otherwise the simplest pair is searched: no multiplier if
    possible, else the multiplier with the fewest decimals, each with the largest
    power-of-two multiple_of that works.
    """
    if (dim, intermediate_size) in KNOWN_FFN_PARAMS:
        multiple_of, multiplier = KNOWN_FFN_PARAMS[(dim, intermediate_size)]
        assert ffn_hidden_dim(dim, multiple_of, multiplier) == intermediate_size
        return multiple_of, multiplier

    base = int(2 * (4 * dim) / 3)
    multiples = [2**k for k in range(12, -1, -1) if intermediate_size % 2**k == 0]
    multipliers: list[float | None] = [None]
    for decimals in range(1, 11):
        # Aim at the middle of [F, F + 1), where int() still floors to F.
        centre = round((intermediate_size + 0.5) / base, decimals)
        step = 10.0**-decimals
        multipliers += [centre, round(centre - step, decimals), round(centre + step, decimals)]
    for multiplier in multipliers:
        if multiplier is not None and multiplier <= 0:
            continue
        for multiple_of in multiples:
            if ffn_hidden_dim(dim, multiple_of, multiplier) == intermediate_size:
                return multiple_of, multiplier
    # Unreachable: multiple_of 1 with a multiplier of 10 decimals always fits.
    raise ConversionError(f"no multiple_of / ffn_dim_multiplier reproduces intermediate_size {intermediate_size}")


def _rope_settings(config: dict) -> tuple[float, dict | None]:
    """(rope_theta, scaling dict or None) from a transformers 4.x or 5.x config.json."""
    # transformers >= 5 writes everything into "rope_parameters"; 4.x wrote
    # "rope_theta" at the top level and the scaling into "rope_scaling".
    rope_parameters = config.get("rope_parameters") or {}
    theta = rope_parameters.get("rope_theta", config.get("rope_theta", 10000.0))  # LlamaConfig's default
    scaling = None
    for candidate in (rope_parameters, config.get("rope_scaling") or {}):
        kind = candidate.get("rope_type", candidate.get("type"))
        if kind not in (None, "default"):
            scaling = dict(candidate, rope_type=kind)
            break
    return float(theta), scaling


def _scaled_rope_params(scaling: dict) -> dict:
    """params.json entries for a non-default RoPE; refuses what Meta's reference cannot compute."""
    if scaling["rope_type"] != "llama3":
        raise ConversionError(
            f"RoPE scaling of type {scaling['rope_type']!r} is not supported: Meta's Llama 3 reference "
            "only knows the 'llama3' scaling (use_scaled_rope)"
        )
    fixed = {key: value for key, value in META_ROPE_SCALING.items() if key != "factor"}
    for key, meta_value in fixed.items():
        if key not in scaling or float(scaling[key]) != float(meta_value):
            raise ConversionError(
                f"rope scaling {key} = {scaling.get(key)!r}, but Meta's reference hard-codes {meta_value} "
                "(llama_models.llama3.model.apply_scaling): params.json cannot express this model"
            )
    factor = float(scaling.get("factor", float("nan")))
    if factor == META_ROPE_SCALING["factor"]:
        return {"use_scaled_rope": True}
    if factor in OTHER_KNOWN_ROPE_FACTORS:
        return {"use_scaled_rope": True, ROPE_SCALING_FACTOR_KEY: factor}
    raise ConversionError(
        f"rope scaling factor {scaling.get('factor')!r} is not supported: Meta's reference hard-codes "
        f"{META_ROPE_SCALING['factor']:g} (Llama 3.1, 3.3), and Llama 3.2 1B/3B use "
        f"{', '.join(f'{f:g}' for f in OTHER_KNOWN_ROPE_FACTORS)}"
    )


def check_architecture(config: dict) -> None:
    """Refuse configs that are not a plain Llama decoder Meta's format can describe."""
    architectures = config.get("architectures")
    if architectures is not None and architectures != ["LlamaForCausalLM"]:
        raise ConversionError(f"unsupported architecture {architectures}: only LlamaForCausalLM can be converted")
    if config.get("model_type") != "llama":
        raise ConversionError(f"unsupported model_type {config.get('model_type')!r}: expected 'llama'")
    if config.get("hidden_act", "silu") != "silu":
        raise ConversionError(f"hidden_act {config['hidden_act']!r}: Meta's feed-forward uses silu")
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            raise ConversionError(f"{key} is true: Meta's format has no biases")


def params_from_config(config: dict) -> dict:
    """Meta's params.json dict for a Hugging Face LlamaForCausalLM config.json dict."""
    check_architecture(config)
    try:
        dim = int(config["hidden_size"])
        n_layers = int(config["num_hidden_layers"])
        n_heads = int(config["num_attention_heads"])
        intermediate_size = int(config["intermediate_size"])
        vocab_size = int(config["vocab_size"])
    except KeyError as exc:
        raise ConversionError(f"config.json lacks {exc.args[0]!r}") from None
    n_kv_heads = int(config.get("num_key_value_heads") or n_heads)
    if dim % n_heads:
        raise ConversionError(f"hidden_size {dim} is not divisible by num_attention_heads {n_heads}")
    # Meta derives the head size as dim // n_heads and has no field for another one.
    head_dim = config.get("head_dim")
    if head_dim is not None and int(head_dim) != dim // n_heads:
        raise ConversionError(
            f"head_dim {head_dim} differs from hidden_size / num_attention_heads = {dim // n_heads}: "
            "Meta's params.json cannot express it (Meta's reference uses dim // n_heads)"
        )
    if n_heads % n_kv_heads:
        raise ConversionError(f"num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv_heads}")

    multiple_of, multiplier = ffn_params(dim, intermediate_size)
    rope_theta, scaling = _rope_settings(config)

    # Same keys and order as Meta's own params.json files.
    params: dict = {"dim": dim, "n_layers": n_layers, "n_heads": n_heads, "n_kv_heads": n_kv_heads,
                    "vocab_size": vocab_size, "multiple_of": multiple_of}
    if multiplier is not None:
        params["ffn_dim_multiplier"] = multiplier
    params["norm_eps"] = float(config.get("rms_norm_eps", 1e-6))  # LlamaConfig's default
    params["rope_theta"] = rope_theta
    if scaling is not None:
        params.update(_scaled_rope_params(scaling))
    assert ffn_hidden_dim(dim, multiple_of, multiplier) == intermediate_size
    return params


# --------------------------------------------------------------------------- tensors
def permute_hf_to_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Meta's row order for a q/k projection in HF's rotate_half order (a view, not a copy).

    Inverse of HF's permute: view(n_heads, head_dim // 2, 2, dim).transpose(1, 2).
    The result has shape (n_heads, head_dim // 2, 2, dim); reshape it to 2-D.
    """
    out_features, in_features = w.shape
    head_dim = out_features // n_heads
    return w.view(n_heads, 2, head_dim // 2, in_features).transpose(1, 2)


def meta_name(hf_name: str) -> str | None:
    """Meta's name for the HF tensor HF_NAME, or None if it has none."""
    if hf_name == "model.embed_tokens.weight":
        return "tok_embeddings.weight"
    if hf_name == "model.norm.weight":
        return "norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    prefix, sep, rest = hf_name.partition(".layers.")
    if prefix == "model" and sep:
        index, _, leaf = rest.partition(".")
        if index.isdigit() and leaf in _HF_LAYER_TO_META:
            return f"layers.{int(index)}.{_HF_LAYER_TO_META[leaf]}"
    return None


def expected_hf_shapes(config: dict, tied: bool) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> shape, for every tensor the conversion needs."""
    dim, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    n_kv_heads = int(config.get("num_key_value_heads") or n_heads)
    head_dim, hidden = dim // n_heads, int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, dim)}
    per_layer = {
        "self_attn.q_proj.weight": (n_heads * head_dim, dim),
        "self_attn.k_proj.weight": (n_kv_heads * head_dim, dim),
        "self_attn.v_proj.weight": (n_kv_heads * head_dim, dim),
        "self_attn.o_proj.weight": (dim, n_heads * head_dim),
        "mlp.gate_proj.weight": (hidden, dim),
        "mlp.down_proj.weight": (dim, hidden),
        "mlp.up_proj.weight": (hidden, dim),
        "input_layernorm.weight": (dim,),
        "post_attention_layernorm.weight": (dim,),
    }
    for i in range(int(config["num_hidden_layers"])):
        shapes.update({f"model.layers.{i}.{leaf}": shape for leaf, shape in per_layer.items()})
    shapes["model.norm.weight"] = (dim,)
    if not tied:
        shapes["lm_head.weight"] = (vocab, dim)
    return shapes


def find_shards(hf_dir: Path) -> dict[str, Path]:
    """HF tensor name -> the safetensors file that holds it."""
    index_path = hf_dir / "model.safetensors.index.json"
    if index_path.is_file():
        weight_map = json.loads(index_path.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ConversionError(f"{index_path} has no weight_map")
        shards = {name: hf_dir / file for name, file in weight_map.items()}
        missing = sorted({str(p.name) for p in shards.values() if not p.is_file()})
        if missing:
            raise ConversionError(f"{index_path} names shards that are missing: {', '.join(missing)}")
        return shards
    files = sorted(hf_dir.glob("model*.safetensors"))
    if not files:
        others = [p.name for p in hf_dir.glob("*.bin")] + [p.name for p in hf_dir.glob("*.pth")]
        hint = f" (found {', '.join(sorted(others))}: only safetensors files are read)" if others else ""
        raise ConversionError(f"no model.safetensors or model-*.safetensors in {hf_dir}{hint}")
    shards: dict[str, Path] = {}
    for file in files:
        with open_safetensors(file) as f:
            shards.update({name: file for name in f.keys()})
    return shards


def _scratch_tensor(scratch_dir: Path, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An empty tensor backed by a shared mapping of a new file: its pages belong to the page cache."""
    numel = math.prod(shape)
    path = scratch_dir / f"{name}.bin"
    # Reserve the blocks first: a full disk is then an OSError here, not a SIGBUS when the mapping is written.
    with path.open("wb") as f:
        os.posix_fallocate(f.fileno(), 0, numel * dtype.itemsize)
    return torch.from_file(str(path), shared=True, size=numel, dtype=dtype).view(shape)


def meta_state_dict(
    hf_dir: Path, config: dict, params: dict, scratch_dir: Path, progress: bool = True,
    before_writing: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Meta's state dict (Meta's key order) of memory-mapped HF tensors; q/k reordered into scratch files.

    BEFORE_WRITING(checkpoint_bytes, scratch_bytes), if given, is called once every tensor is mapped and
    checked, before the first scratch file is written (the free-space check).
    """
    tied = bool(config.get("tie_word_embeddings", False))
    shards = find_shards(hf_dir)
    expected = expected_hf_shapes(config, tied)
    unknown = sorted(name for name in shards
                     if name not in expected and not name.endswith(IGNORED_SUFFIXES)
                     and not (tied and name == "lm_head.weight"))  # tied: HF ignores a stored lm_head too
    missing = [name for name in expected if name not in shards]
    if missing or unknown:
        detail = []
        if missing:
            hint = " (config.json says tie_word_embeddings is false)" if missing == ["lm_head.weight"] else ""
            detail.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}{hint}")
        if unknown:
            detail.append(f"unexpected {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        raise ConversionError(f"the safetensors files in {hf_dir} do not match config.json: {'; '.join(detail)}")

    heads = {"self_attn.q_proj.weight": params["n_heads"], "self_attn.k_proj.weight": params["n_kv_heads"]}
    mapped: dict[str, torch.Tensor] = {}
    # The tensors keep their own mappings of the shards after the files are closed.
    with contextlib.ExitStack() as stack:
        handles = {file: stack.enter_context(open_safetensors(file)) for file in sorted(set(shards.values()))}
        for hf_name in expected:
            mapped[hf_name] = tensor = handles[shards[hf_name]].get_tensor(hf_name)  # memory-mapped: nothing read
            if tuple(tensor.shape) != expected[hf_name]:
                raise ConversionError(f"{hf_name} in {shards[hf_name]} has shape {tuple(tensor.shape)}, "
                                      f"config.json implies {expected[hf_name]}")

    def permuted(hf_name: str) -> str | None:
        leaf = hf_name.split(".", 3)[-1]  # "self_attn.q_proj.weight" for a layer's tensor
        return leaf if hf_name.startswith("model.layers.") and leaf in heads else None

    if before_writing is not None:
        before_writing(sum(t.numel() * t.element_size() for t in mapped.values()),
                       sum(t.numel() * t.element_size() for n, t in mapped.items() if permuted(n)))
    out: dict[str, torch.Tensor] = {}
    for hf_name, tensor in tqdm(mapped.items(), desc="converting", unit="tensor", disable=not progress,
                                file=sys.stderr):
        name = meta_name(hf_name)
        if leaf := permuted(hf_name):
            # Reordering rows needs a copy: write it straight into a file-backed tensor.
            target = _scratch_tensor(scratch_dir, name, tuple(tensor.shape), tensor.dtype)
            target.view(heads[leaf], -1, 2, tensor.shape[1]).copy_(permute_hf_to_meta(tensor, heads[leaf]))
            tensor = target
        out[name] = tensor
    return out


def save_with_progress(state: dict[str, torch.Tensor], path: Path, progress: bool = True) -> None:
    """torch.save through a file object that moves a byte progress bar and keeps a failed write's OSError."""
    total = sum(t.numel() * t.element_size() for t in state.values())
    with tqdm(total=total, desc=f"writing {path.name}", unit="B", unit_scale=True, disable=not progress,
              file=sys.stderr) as bar:
        save_tensors(state, path, bar)
        bar.update(total - bar.n)


# --------------------------------------------------------------------------- tokenizer
def check_tiktoken_file(path: Path) -> None:
    """Refuse files that are not tiktoken BPE ranks ("<base64 token> <rank>" lines), e.g. tokenizer.json."""
    try:
        with path.open("rb") as f:
            token, rank = f.readline().split()
        base64.b64decode(token, validate=True)
        int(rank)
    except (OSError, ValueError) as exc:
        raise ConversionError(
            f"{path} is not a tiktoken tokenizer.model (lines of '<base64 token> <rank>') "
            f"like Meta's Llama 3 one: {exc}"
        ) from None


def find_tokenizer(hf_dir: Path, tokenizer: Path | None) -> Path | None:
    """--tokenizer, else HF_DIR/original/tokenizer.model (where the hub keeps Meta's files), else None."""
    if tokenizer is not None:
        if not tokenizer.is_file():
            raise ConversionError(f"--tokenizer {tokenizer}: no such file")
        check_tiktoken_file(tokenizer)
        return tokenizer
    candidate = hf_dir / "original" / TOKENIZER_NAME
    if candidate.is_file():
        check_tiktoken_file(candidate)
        return candidate
    return None


# --------------------------------------------------------------------------- driver
def read_config(hf_dir: Path) -> dict:
    if not hf_dir.is_dir():
        raise ConversionError(f"{hf_dir} is not a directory")
    path = hf_dir / "config.json"
    if not path.is_file():
        raise ConversionError(f"{path} not found: HF_DIR must hold a Hugging Face model's config.json")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        kind = looks_like_markup(path.read_bytes()[:4096])
        hint = f" (it is {kind}: its download failed; download it again)" if kind else ""
        raise ConversionError(f"{path} is not valid JSON{hint}: {exc}") from None


def check_destination(hf_dir: Path, dst: Path, force: bool) -> None:
    if same_or_inside(dst, hf_dir):  # also when spelled through a symlink or with '..'
        raise ConversionError(f"DST {dst} is inside HF_DIR {hf_dir}: the input folder is never modified")
    if dst.exists() or dst.is_symlink():
        if not dst.is_dir():
            raise ConversionError(f"{dst} exists and is not a directory")
        if not force:
            raise ConversionError(f"{dst} already exists (use --force to replace its {CHECKPOINT_NAME}, "
                                  f"{PARAMS_NAME} and {TOKENIZER_NAME})")


def convert(hf_dir: Path, dst: Path, tokenizer: Path | None = None, force: bool = False,
            progress: bool = True) -> dict:
    """Write DST from HF_DIR; returns a summary dict. Raises ConversionError on bad input."""
    started = time.perf_counter()
    config = read_config(hf_dir)
    params = params_from_config(config)
    check_destination(hf_dir, dst, force)
    tokenizer_src = find_tokenizer(hf_dir, tokenizer)

    created_parents = make_parents(dst)
    # Everything is written into a temporary sibling of DST (same file system),
    # then moved into place with os.replace: an interrupted run leaves no half-written DST.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would otherwise become DST's mode

    def check_space(checkpoint_bytes: int, scratch_bytes: int) -> None:
        # The reordered q/k scratch files and the new checkpoint exist side by side until the end.
        extra = ZIP_OVERHEAD + (tokenizer_src.stat().st_size if tokenizer_src is not None else 0)
        check_free_space(dst.parent, checkpoint_bytes + scratch_bytes + extra,
                         f"{CHECKPOINT_NAME} ({human_size(checkpoint_bytes)}) and the scratch copies of wq and wk "
                         f"({human_size(scratch_bytes)})", shown=str(dst))

    with cleaned_up_on_failure([tmp], created_parents):  # a failure leaves neither TMP nor new folders
        scratch = tmp / "scratch"
        scratch.mkdir()
        state = meta_state_dict(hf_dir, config, params, scratch, progress=progress, before_writing=check_space)
        n_tensors = len(state)
        dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values()})
        tied = "output.weight" not in state
        save_with_progress(state, tmp / CHECKPOINT_NAME, progress=progress)
        del state  # unmap the shards and the scratch files before deleting them
        shutil.rmtree(scratch)
        write_text(tmp / PARAMS_NAME, json.dumps(params, indent=2) + "\n")
        if tokenizer_src is not None:
            copy_file(tokenizer_src, tmp / TOKENIZER_NAME)

        if dst.is_dir():  # --force: replace our files, leave anything else in DST alone
            for name in (CHECKPOINT_NAME, PARAMS_NAME, TOKENIZER_NAME):
                if (tmp / name).exists():
                    os.replace(tmp / name, dst / name)
            tmp.rmdir()
        else:
            os.replace(tmp, dst)

    return {
        "dst": dst, "params": params, "n_tensors": n_tensors, "dtypes": dtypes, "tied": tied,
        "checkpoint_bytes": (dst / CHECKPOINT_NAME).stat().st_size,
        "tokenizer": tokenizer_src, "seconds": time.perf_counter() - started,
        "kept_tokenizer": tokenizer_src is None and (dst / TOKENIZER_NAME).is_file(),
        "ffn_hidden": ffn_hidden_dim(params["dim"], params["multiple_of"], params.get("ffn_dim_multiplier")),
    }


def print_summary(summary: dict, hf_dir: Path) -> None:
    dst, params = summary["dst"], summary["params"]
    output = "no output.weight (tied to tok_embeddings)" if summary["tied"] else "with output.weight"
    print(f"wrote {dst}/ in {summary['seconds']:.1f} s")
    print(f"  {CHECKPOINT_NAME:20s} {human_size(summary['checkpoint_bytes']):>9s}  {summary['n_tensors']} tensors, "
          f"{'/'.join(summary['dtypes'])}, {output}")
    print(f"  {PARAMS_NAME:20s} {human_size((dst / PARAMS_NAME).stat().st_size):>9s}  "
          f"FFN hidden size {summary['ffn_hidden']} = Meta's formula with multiple_of {params['multiple_of']}"
          + (f", ffn_dim_multiplier {params['ffn_dim_multiplier']}" if "ffn_dim_multiplier" in params else ""))
    if summary["tokenizer"] is not None:
        print(f"  {TOKENIZER_NAME:20s} {human_size((dst / TOKENIZER_NAME).stat().st_size):>9s}  "
              f"copied from {summary['tokenizer']}")
    elif summary["kept_tokenizer"]:
        print(f"note: kept the existing {dst / TOKENIZER_NAME} (no tokenizer given to replace it)")
    else:
        print(f"note: no {TOKENIZER_NAME} (give --tokenizer PATH, or put Meta's file in {hf_dir}/original/): "
              "the notebook then uses the Llama 3 tokenizer from Meta's llama-models package, "
              "the same vocabulary for Llama 3, 3.1 and 3.2")
        if params["vocab_size"] != LLAMA3_VOCAB_SIZE:
            print(f"note: vocab_size is {params['vocab_size']}, not Llama 3's {LLAMA3_VOCAB_SIZE}: "
                  "the Llama 3 tokenizer does not fit this model; pass its tiktoken file with --tokenizer")
    if (hf_dir / "original" / CHECKPOINT_NAME).is_file():
        print(f"note: {hf_dir}/original/ already holds Meta's own files; the notebook can read that folder as it is")
    if ROPE_SCALING_FACTOR_KEY in params:
        print(f"note: config.json's RoPE scaling factor is {params[ROPE_SCALING_FACTOR_KEY]:g} (Llama 3.2 1B/3B); "
              f"Meta's params.json has no field for it, so it is kept as \"{ROPE_SCALING_FACTOR_KEY}\". "
              f"Meta's Llama 3 reference ignores that key and uses {META_ROPE_SCALING['factor']:g}.")
    print(json.dumps(params))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert a Hugging Face Llama 3 checkpoint (config.json + safetensors) to Meta's layout "
        "(consolidated.00.pth + params.json [+ tokenizer.model]), bit-exact, undoing HF's q/k permutation.",
    )
    parser.add_argument("hf_dir", type=Path, help="Hugging Face model folder: config.json and *.safetensors")
    parser.add_argument("dst", type=Path, help="output folder (must not exist unless --force)")
    parser.add_argument("--tokenizer", type=Path, metavar="PATH",
                        help="Meta's tiktoken tokenizer.model to copy into DST "
                        "(default: HF_DIR/original/tokenizer.model if present)")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing DST, replacing its consolidated.00.pth, params.json "
                        "and tokenizer.model")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        summary = convert(args.hf_dir, args.dst, tokenizer=args.tokenizer, force=args.force,
                          progress=not args.quiet)
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DiskSpaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk filled up meanwhile, permissions: the temporary folder is already gone
        if is_disk_full(exc):
            print(f"error: {write_failure_message(exc, args.dst)}", file=sys.stderr)
        else:
            where = f" ({exc.filename})" if exc.filename else ""
            print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    print_summary(summary, args.hf_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
