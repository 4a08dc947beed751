"""Write a tiny, random Llama 3 checkpoint in Meta's exact on-disk layout.

The output directory looks like a real Meta download (e.g. Meta-Llama-3-8B/):

    OUT_DIR/consolidated.00.pth   state_dict with Meta's key names
                                  (llama_models.llama3.model.Transformer)
    OUT_DIR/params.json           Meta's params.json fields
    OUT_DIR/tokenizer.model       Llama 3's real tiktoken BPE file (copied from
                                  the installed llama-models package)

All configs keep Llama 3's real vocabulary (128256) so the real tokenizer works
with them; only the transformer is shrunk.  Weights are seeded random numbers
scaled so that activations and logits are non-degenerate (std ~1).

Usage:
    python scripts/make_tiny_checkpoint.py OUT_DIR --config gqa2 [--seed N]
        [--dtype bfloat16|float32] [--tied] [--use-scaled-rope] [--shards N] [--force]

With --shards N the weights are split like Meta's model-parallel checkpoints (the 70B comes
as consolidated.00.pth ... consolidated.07.pth): column-parallel matrices (wq, wk, wv, w1, w3,
output) and the vocab-parallel embedding along dim 0, row-parallel ones (wo, w2) along dim 1,
norms copied whole into every shard.

OUT_DIR must be empty or new unless --force; the free space is checked first, and the files are written
under temporary names renamed when all are complete (a full disk leaves nothing half-written).

From Python (tests):
    from make_tiny_checkpoint import make_tiny_checkpoint
    ckpt_dir = make_tiny_checkpoint(tmp_path / "ckpt", config="gqa4")
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import torch

from safe_write import (DiskSpaceError, check_free_space, cleaned_up_on_failure, copy_file, is_disk_full, make_parents,
                        save_tensors, write_failure_message, write_text)

LLAMA3_VOCAB_SIZE = 128256

_COMMON = {
    "vocab_size": LLAMA3_VOCAB_SIZE,
    "norm_eps": 1e-05,
    "rope_theta": 500000.0,
}

# name -> params.json contents (use_scaled_rope is added at write time).
CONFIGS: dict[str, dict] = {
    # Grouped-query attention, 2 query heads per KV head, with an FFN multiplier
    # (like the real 8B: multiple_of 1024, ffn_dim_multiplier 1.3).
    "gqa2": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
             "multiple_of": 32, "ffn_dim_multiplier": 1.3, **_COMMON},
    # GQA with 4 query heads per KV head (the real 8B ratio: 32 / 8), 3 layers.
    "gqa4": {"dim": 128, "n_layers": 3, "n_heads": 8, "n_kv_heads": 2,
             "multiple_of": 64, "ffn_dim_multiplier": None, **_COMMON},
    # Plain multi-head attention (n_kv_heads == n_heads).
    "mha": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 4,
            "multiple_of": 16, "ffn_dim_multiplier": None, **_COMMON},
    # Multi-query attention (a single KV head shared by all query heads).
    "mqa": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 1,
            "multiple_of": 32, "ffn_dim_multiplier": None, **_COMMON},
}

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}

CHECKPOINT_NAME = "consolidated.00.pth"
ZIP_OVERHEAD = 2**20  # torch.save's zip headers and 64-byte alignment, per file, generously


def ffn_hidden_dim(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Meta's SwiGLU hidden size (llama_models.llama3.model.FeedForward)."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * math.ceil(hidden / multiple_of)


def config_params(config: str, use_scaled_rope: bool = False) -> dict:
    """The params.json dict written for CONFIG."""
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; choose from {sorted(CONFIGS)}")
    params = copy.deepcopy(CONFIGS[config])
    params["use_scaled_rope"] = bool(use_scaled_rope)
    return params


def expected_shapes(params: dict, tied: bool = False) -> dict[str, tuple[int, ...]]:
    """Key -> shape of Meta's Transformer state_dict for PARAMS, in Meta's key order."""
    dim, n_heads = params["dim"], params["n_heads"]
    n_kv_heads = params.get("n_kv_heads") or n_heads
    head_dim = dim // n_heads
    hidden = ffn_hidden_dim(dim, params["multiple_of"], params.get("ffn_dim_multiplier"))
    vocab = params["vocab_size"]

    shapes: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (vocab, dim)}
    for i in range(params["n_layers"]):
        p = f"layers.{i}."
        shapes[p + "attention.wq.weight"] = (n_heads * head_dim, dim)
        shapes[p + "attention.wk.weight"] = (n_kv_heads * head_dim, dim)
        shapes[p + "attention.wv.weight"] = (n_kv_heads * head_dim, dim)
        shapes[p + "attention.wo.weight"] = (dim, n_heads * head_dim)
        shapes[p + "feed_forward.w1.weight"] = (hidden, dim)
        shapes[p + "feed_forward.w2.weight"] = (dim, hidden)
        shapes[p + "feed_forward.w3.weight"] = (hidden, dim)
        shapes[p + "attention_norm.weight"] = (dim,)
        shapes[p + "ffn_norm.weight"] = (dim,)
    shapes["norm.weight"] = (dim,)
    if not tied:
        shapes["output.weight"] = (vocab, dim)
    return shapes


def llama3_tokenizer_path() -> Path:
    """Path of Llama 3's tokenizer.model shipped inside the llama-models package."""
    spec = importlib.util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the llama-models package is not installed; it ships Llama 3's tokenizer.model "
            "(pip install llama-models)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "llama3" / "tokenizer.model"
        if path.is_file():
            return path
    raise FileNotFoundError("llama_models/llama3/tokenizer.model not found in the llama-models package")


def _random_state_dict(params: dict, tied: bool, seed: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes(params, tied=tied).items():
        if key.endswith("norm.weight"):
            # RMSNorm gains near 1 (but not exactly 1, so a missing gain is caught).
            w = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif key == "tok_embeddings.weight":
            w = torch.randn(shape, generator=gen)
        else:
            # nn.Linear weight [out, in]: std 1/sqrt(fan_in) keeps activations O(1).
            w = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        state[key] = w.to(dtype).contiguous()
    return state


# Which dimension Meta's model-parallel layers split (fairscale): ColumnParallelLinear and
# VocabParallelEmbedding split their output rows, RowParallelLinear its input columns.
MODEL_PARALLEL_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "tok_embeddings": 0, "wo": 1, "w2": 1}


def split_model_parallel(state: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
    """The state dict as n model-parallel shards, each tensor its own compact storage."""
    shards: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    for name, tensor in state.items():
        dim = MODEL_PARALLEL_DIM.get(name.split(".")[-2])
        if dim is not None and tensor.shape[dim] % n:
            raise ValueError(f"{name} {tuple(tensor.shape)} does not split into {n} equal shards along dim {dim}")
        pieces = [tensor] * n if dim is None else list(torch.chunk(tensor, n, dim=dim))
        for shard, piece in zip(shards, pieces):
            shard[name] = piece.clone()
    return shards


def make_tiny_checkpoint(
    out_dir: str | Path,
    config: str = "gqa2",
    seed: int = 0,
    dtype: torch.dtype | str = torch.bfloat16,
    tied: bool = False,
    use_scaled_rope: bool = False,
    shards: int = 1,
    force: bool = False,
) -> Path:
    """Write consolidated.00.pth, params.json and tokenizer.model into OUT_DIR.

    Refuses an existing non-empty OUT_DIR unless FORCE (then our files are
    overwritten, and consolidated.*.pth shards of an earlier run removed; other files are left alone),
    and refuses (DiskSpaceError) when the disk has not enough free space for the files. Every file is
    written under a temporary name and renamed when all are complete. Returns OUT_DIR as a Path.
    """
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"unsupported dtype {dtype!r}; choose from {sorted(_DTYPES)}")
        dtype = _DTYPES[dtype]
    if dtype not in _DTYPES.values():
        raise ValueError(f"unsupported dtype {dtype}; use torch.bfloat16 or torch.float32")
    params = config_params(config, use_scaled_rope=use_scaled_rope)

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"refusing to write into non-empty directory {out} (use --force to overwrite)")
    tokenizer = llama3_tokenizer_path()
    shapes = expected_shapes(params, tied=tied)
    needed = (sum(math.prod(s) for s in shapes.values()) * dtype.itemsize + shards * ZIP_OVERHEAD
              + tokenizer.stat().st_size)
    check_free_space(out, needed, f"the {config} checkpoint")

    state = _random_state_dict(params, tied=tied, seed=seed, dtype=dtype)
    pieces = {CHECKPOINT_NAME: state} if shards == 1 else {
        f"consolidated.{index:02d}.pth": shard for index, shard in enumerate(split_model_parallel(state, shards))}
    # Every file under a temporary name first, renamed when all are complete: a failed run (a full disk)
    # leaves no half-written file, and with --force the previous files stay whole.
    created = make_parents(out / CHECKPOINT_NAME)  # OUT and its missing parents, removed again on failure
    names = [*pieces, "params.json", "tokenizer.model"]
    tmp = {name: out / f".{name}.tmp" for name in names}
    with cleaned_up_on_failure(tmp.values(), created):
        for name, piece in pieces.items():
            save_tensors(piece, tmp[name])
        write_text(tmp["params.json"], json.dumps(params, indent=2) + "\n")
        copy_file(tokenizer, tmp["tokenizer.model"])
        for name in reversed(names):  # the checkpoint last
            os.replace(tmp[name], out / name)
        for stale in out.glob("consolidated.*.pth"):  # --force: shards of an earlier run would be merged in
            if stale.name not in pieces:
                stale.unlink()
    return out


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write a tiny random Llama 3 checkpoint in Meta's layout "
        "(consolidated.00.pth + params.json + tokenizer.model).",
    )
    parser.add_argument("out_dir", type=Path, help="output directory (created if missing)")
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS), help="model shape")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the weights (default 0)")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="bfloat16",
                        help="on-disk dtype of the weights (default bfloat16, like Meta's 8B)")
    parser.add_argument("--tied", action="store_true",
                        help="tie the output projection to the embeddings: write no output.weight")
    parser.add_argument("--use-scaled-rope", action="store_true",
                        help='write "use_scaled_rope": true in params.json (Llama 3.1-style RoPE scaling)')
    parser.add_argument("--shards", type=int, default=1,
                        help="split into N model-parallel files consolidated.00.pth ... (default 1)")
    parser.add_argument("--force", action="store_true", help="write into an existing non-empty directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        out = make_tiny_checkpoint(
            args.out_dir,
            config=args.config,
            seed=args.seed,
            dtype=args.dtype,
            tied=args.tied,
            use_scaled_rope=args.use_scaled_rope,
            shards=args.shards,
            force=args.force,
        )
    except (FileExistsError, ValueError, DiskSpaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk filled up meanwhile: the temporary files are already gone
        if not is_disk_full(exc):
            raise
        print(f"error: {write_failure_message(exc, args.out_dir)}", file=sys.stderr)
        return 1
    params = json.loads((out / "params.json").read_text())
    hidden = ffn_hidden_dim(params["dim"], params["multiple_of"], params["ffn_dim_multiplier"])
    print(f"wrote {args.config} checkpoint to {out} "
          f"(dim={params['dim']}, n_layers={params['n_layers']}, n_heads={params['n_heads']}, "
          f"n_kv_heads={params['n_kv_heads']}, ffn_hidden={hidden}, dtype={args.dtype}, "
          f"tied={args.tied}, use_scaled_rope={args.use_scaled_rope})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
