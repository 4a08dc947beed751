"""Meta's reference Llama 3 implementation, runnable on CPU in a test process.

`llama_models.llama3.model.Transformer` is built from fairscale model-parallel
layers, which need a torch.distributed process group and fairscale's model
parallel groups.  `init_model_parallel()` sets both up for a single process
(gloo, rank 0, world size 1, file:// rendezvous in a private temp dir: no
network).  After that the reference model runs like any nn.Module.

API
    init_model_parallel() -> None                         idempotent
    meta_components() -> SimpleNamespace                  Meta's classes/functions
    load_meta_transformer(ckpt_dir, max_seq_len=128, dtype=torch.float32, max_batch_size=1)
    meta_logits(model, tokens) -> float32 [T, V]          one forward at start_pos 0
    meta_greedy(model, tokens, n_new, stop_tokens=()) -> list[int]
    meta_generate(model, prompts, max_gen_len, stop_tokens=(), pad_id=-1, temperature=0.0, top_p=0.9)
                                                          -> list[list[int]], a batch through Meta's own generate
    meta_generation() -> namespace of llama_models/llama3/generation.py (Llama3, sample_top_p), text-only
    meta_to_hf_model(ckpt_dir, dtype=torch.float32, attn_implementation="eager",
                     max_position_embeddings=8192) -> transformers.LlamaForCausalLM
    meta_to_hf_state_dict(meta_sd, params) -> dict        the name/permutation mapping
    permute_meta_to_hf(w, n_heads) / permute_hf_to_meta(w, n_heads)
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import copy
import functools
import importlib.util
import io
import json
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, Sequence

import torch

CHECKPOINT_NAME = "consolidated.00.pth"

_store_dir: str | None = None


# --------------------------------------------------------------------------- setup
def init_model_parallel() -> None:
    """Make fairscale's model-parallel layers usable in this process (world size 1).

    Safe to call any number of times.  Reuses an existing process group if one
    is already initialized (it must then have world size 1).
    """
    global _store_dir
    import torch.distributed as dist
    import fairscale.nn.model_parallel.initialize as fs_init

    if not dist.is_initialized():
        _store_dir = tempfile.mkdtemp(prefix="meta_ref_pg_")
        atexit.register(shutil.rmtree, _store_dir, ignore_errors=True)
        dist.init_process_group(
            backend="gloo",
            init_method=f"file://{Path(_store_dir) / 'store'}",
            rank=0,
            world_size=1,
        )
    if dist.get_world_size() != 1:
        raise RuntimeError(
            f"torch.distributed is already initialized with world size {dist.get_world_size()}; "
            "the reference harness needs world size 1"
        )
    if not fs_init.model_parallel_is_initialized():
        # fairscale prints three "> initializing ..." lines on rank 0; keep test output clean.
        with contextlib.redirect_stdout(io.StringIO()):
            fs_init.initialize_model_parallel(1)


def meta_components() -> SimpleNamespace:
    """Meta's reference building blocks from llama_models.llama3.model / args.

    Attention, FeedForward, TransformerBlock and Transformer contain fairscale
    layers: call init_model_parallel() before constructing them.
    """
    from llama_models.llama3 import model as m
    from llama_models.llama3.args import ModelArgs

    return SimpleNamespace(
        ModelArgs=ModelArgs,
        RMSNorm=m.RMSNorm,
        apply_scaling=m.apply_scaling,
        precompute_freqs_cis=m.precompute_freqs_cis,
        reshape_for_broadcast=m.reshape_for_broadcast,
        apply_rotary_emb=m.apply_rotary_emb,
        repeat_kv=m.repeat_kv,
        Attention=m.Attention,
        FeedForward=m.FeedForward,
        TransformerBlock=m.TransformerBlock,
        Transformer=m.Transformer,
    )


# --------------------------------------------------------------------------- loading
def read_params(ckpt_dir: str | Path) -> dict:
    return json.loads((Path(ckpt_dir) / "params.json").read_text())


def load_meta_state_dict(ckpt_dir: str | Path) -> dict[str, torch.Tensor]:
    """consolidated.00.pth as stored (mmap'd, on CPU, on-disk dtype)."""
    return torch.load(Path(ckpt_dir) / CHECKPOINT_NAME, map_location="cpu", weights_only=True, mmap=True)


def load_meta_transformer(
    ckpt_dir: str | Path,
    max_seq_len: int = 128,
    dtype: torch.dtype = torch.float32,
    max_batch_size: int = 1,
):
    """Meta's Transformer with the checkpoint's weights, in eval mode and DTYPE.

    A checkpoint without output.weight (tied embeddings) gets tok_embeddings.weight
    as its output projection.  The default float32 computation of a bf16
    checkpoint is the reference the tutorial is compared against.
    """
    init_model_parallel()
    from llama_models.llama3.args import ModelArgs
    from llama_models.llama3.model import Transformer

    params = read_params(ckpt_dir)
    args = ModelArgs(**params, max_seq_len=max_seq_len, max_batch_size=max_batch_size)
    state = dict(load_meta_state_dict(ckpt_dir))
    if "output.weight" not in state:
        state["output.weight"] = state["tok_embeddings.weight"]
    state = {k: v.to(dtype) for k, v in state.items()}

    model = Transformer(args)
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


# --------------------------------------------------------------------------- running
def _token_tensor(tokens: Sequence[int]) -> torch.Tensor:
    return torch.tensor([list(tokens)], dtype=torch.long)


def meta_logits(model, tokens: Sequence[int]) -> torch.Tensor:
    """float32 logits [T, vocab] of one forward pass over TOKENS at start_pos 0."""
    tokens = list(tokens)
    if not tokens:
        raise ValueError("tokens must be non-empty")
    if len(tokens) > model.params.max_seq_len:
        raise ValueError(f"{len(tokens)} tokens exceed the model's max_seq_len {model.params.max_seq_len}")
    logits = model.forward(_token_tensor(tokens), 0)  # inference_mode inside
    return logits[0].float().clone()  # clone outside inference mode -> a normal tensor


def meta_greedy(model, tokens: Sequence[int], n_new: int, stop_tokens: Iterable[int] = ()) -> list[int]:
    """Greedy (temperature 0) continuation using Meta's KV cache.

    Mirrors llama_models' Llama3.generate for one prompt: prefill the prompt at
    start_pos 0, then feed each new token alone at its position, argmax of the
    last logits each step.  Like Meta, a generated stop token is included in the
    result and ends generation.  Returns at most N_NEW new token ids.
    """
    tokens = list(tokens)
    stop = set(int(t) for t in stop_tokens)
    if not tokens:
        raise ValueError("tokens must be non-empty")
    if len(tokens) + n_new > model.params.max_seq_len:
        raise ValueError(
            f"prompt ({len(tokens)}) + n_new ({n_new}) exceeds max_seq_len {model.params.max_seq_len}"
        )
    new: list[int] = []
    with torch.inference_mode():
        logits = model.forward(_token_tensor(tokens), 0)
        pos = len(tokens)
        for _ in range(n_new):
            nxt = int(torch.argmax(logits[0, -1], dim=-1))
            new.append(nxt)
            if nxt in stop or len(new) == n_new:
                break
            logits = model.forward(_token_tensor([nxt]), pos)
            pos += 1
    return new


def _generation_path() -> Path:
    return Path(importlib.util.find_spec("llama_models").submodule_search_locations[0]) / "llama3" / "generation.py"


class _NoCrossAttentionTransformer:
    """Stands in for llama_models' multimodal CrossAttentionTransformer, which a text-only Transformer never is.

    generation.py names it in Llama3.__init__'s annotation (evaluated when the class is defined) and in build();
    generate() itself only asks `isinstance(self.model, Transformer)`.
    """


@functools.lru_cache(maxsize=None)
def meta_generation() -> SimpleNamespace:
    """llama_models/llama3/generation.py itself, executed as a module without its multimodal import.

    Importing the module fails here: `from .multimodal.model import CrossAttentionTransformer` imports
    torchvision, which is not installable beside this torch build. So the file's source is compiled unchanged,
    statement by statement, except that one import statement, whose name is bound to a placeholder class
    instead (_NoCrossAttentionTransformer). Every other import is the module's own (relative imports resolve in
    the llama_models.llama3 package), and Llama3, its generate() and sample_top_p are Meta's code, byte for byte,
    with their line numbers (tracebacks point into Meta's file).
    """
    path = _generation_path()
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "multimodal.model"]
    if len(skipped) != 1 or [a.name for a in skipped[0].names] != ["CrossAttentionTransformer"]:
        raise RuntimeError(f"{path}: expected exactly one `from .multimodal.model import CrossAttentionTransformer`; "
                           "the installed llama-models differs from 0.3.0, check meta_generation()")
    body = [n for n in tree.body if n is not skipped[0]]
    namespace = {"__name__": "llama_models.llama3.generation", "__package__": "llama_models.llama3",
                 "__file__": str(path), "CrossAttentionTransformer": _NoCrossAttentionTransformer}
    exec(compile(ast.Module(body, type_ignores=[]), str(path), "exec"), namespace)
    return SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})


def meta_generate(
    model,
    prompts: Sequence[Sequence[int]],
    max_gen_len: int,
    stop_tokens: Iterable[int] = (),
    pad_id: int = -1,
    temperature: float = 0.0,
    top_p: float = 0.9,
) -> list[list[int]]:
    """A batch of prompts through Meta's own batched generation: `Llama3.generate` of llama_models 0.3.0.

    Not a port: this calls `Llama3.generate` from llama_models/llama3/generation.py (loaded by meta_generation(),
    unchanged), constructed as `Llama3(model, tokenizer, model.params)` around MODEL, Meta's reference
    Transformer from load_meta_transformer() (build it with max_batch_size >= len(PROMPTS) and
    max_seq_len >= longest prompt + MAX_GEN_LEN). The tokenizer is a shallow copy of Meta's Tokenizer with
    two attributes replaced: `stop_tokens` = STOP_TOKENS and `pad_id` = PAD_ID (generate reads only those, and
    `decode` for each GenerationResult's text).

    What Meta's loop does (generation.py, Llama3.generate), and so what this returns:
      * `assert bsz <= params.max_batch_size`: more prompts than the model's max_batch_size raise AssertionError;
      * `total_len = min(max_gen_len + max_prompt_len, params.max_seq_len)`; `tokens` is a (bsz, total_len)
        tensor filled with pad_id, each prompt written at its start (right padding: every row's positions start
        at 0, so no row's RoPE positions shift), `input_text_mask = tokens != pad_id`;
      * decoding starts at `min_prompt_len`: the first forward is the shortest prompt's length over all rows,
        then one position at a time for every row; at positions still inside a longer prompt,
        `torch.where(input_text_mask[:, cur_pos], tokens[:, cur_pos], next_token)` keeps the prompt token
        (teacher forcing), elsewhere the argmax (TEMPERATURE 0) or `sample_top_p` of softmax(logits / TEMPERATURE)
        is written; `eos_reached` marks a row whose generated token is a stop token, and the loop ends when all
        rows reached one or at total_len. Rows that have stopped keep being fed (their later tokens are
        ignored).

    Meta's generate yields one GenerationResult per row and position; its own consumers (llama3/scripts/
    completion.py, chat_completion.py) print a row's tokens whose `ignore_token` is False and stop at the first
    one whose `finished` is True, the stop token itself, without printing it. The older meta-llama/llama3
    `generate` likewise cut each row at `len(prompt) + max_gen_len` and then dropped the stop token and all after
    it. Here each row is: its generated tokens (ignore_token False), up to and INCLUDING the first stop token
    (the first result with finished True), and at most MAX_GEN_LEN of them: without the cut, a shorter prompt
    would get total_len - len(prompt) > MAX_GEN_LEN tokens. So `row[:-1]` is what Meta shows when the row ends
    with a stop token. A row also gets fewer than MAX_GEN_LEN tokens when max_seq_len cuts total_len.

    Refused with ValueError, where Meta's generate would do something else than continue each prompt: no
    prompts, an empty prompt, MAX_GEN_LEN < 1 (Meta reads 0 or None as max_seq_len - 1), a prompt as long as
    max_seq_len (Meta prints "Out of token budget" and yields nothing), and a prompt that contains PAD_ID
    (input_text_mask would treat it as padding and overwrite it with a generated token). Sampling
    (TEMPERATURE > 0) draws from torch's global generator, as Meta's sample_top_p does: seed it with
    torch.manual_seed.
    """
    prompts = [[int(t) for t in p] for p in prompts]
    if not prompts:
        raise ValueError("prompts must hold at least one prompt")
    if any(not p for p in prompts):
        raise ValueError("every prompt must be non-empty")
    if max_gen_len < 1:
        raise ValueError(f"max_gen_len must be at least 1, not {max_gen_len}")
    longest = max(len(p) for p in prompts)
    if longest >= model.params.max_seq_len:
        raise ValueError(f"a prompt of {longest} tokens leaves no room in max_seq_len {model.params.max_seq_len}")
    with_pad = [i for i, p in enumerate(prompts) if pad_id in p]
    if with_pad:
        raise ValueError(f"prompt {with_pad[0]} contains pad_id {pad_id}: Meta's input_text_mask would overwrite it")

    gen = meta_generation()
    from llama_models.llama3.chat_format import LLMInput
    from llama_models.llama3.tokenizer import Tokenizer

    tokenizer = copy.copy(Tokenizer.get_instance())
    tokenizer.stop_tokens = [int(t) for t in stop_tokens]
    tokenizer.pad_id = int(pad_id)
    llama = gen.Llama3(model, tokenizer, model.params)

    rows: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    steps = llama.generate([LLMInput(tokens=p) for p in prompts], temperature=temperature, top_p=top_p,
                           max_gen_len=max_gen_len)
    for results in steps:
        for result in results:
            i = result.batch_idx
            if result.ignore_token or done[i]:
                continue
            rows[i].append(int(result.token))
            if bool(result.finished) or len(rows[i]) == max_gen_len:
                done[i] = True
        if all(done):
            break
    steps.close()
    return rows


# --------------------------------------------------------------------------- Meta -> HF
def permute_meta_to_hf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder wq/wk rows from Meta's interleaved RoPE pairs to HF's rotate_half layout.

    Meta rotates pairs (2i, 2i+1) of each head; HF rotates (i, i + head_dim/2).
    Same as transformers' convert_llama_weights_to_hf.permute.
    """
    out_features, in_features = w.shape
    head_dim = out_features // n_heads
    return w.view(n_heads, head_dim // 2, 2, in_features).transpose(1, 2).reshape(out_features, in_features)


def permute_hf_to_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of permute_meta_to_hf."""
    out_features, in_features = w.shape
    head_dim = out_features // n_heads
    return w.view(n_heads, 2, head_dim // 2, in_features).transpose(1, 2).reshape(out_features, in_features)


def meta_to_hf_state_dict(meta_sd: dict[str, torch.Tensor], params: dict) -> dict[str, torch.Tensor]:
    """Map Meta key names to LlamaForCausalLM's, permuting q/k for HF's RoPE."""
    n_heads = params["n_heads"]
    n_kv_heads = params.get("n_kv_heads") or n_heads
    hf: dict[str, torch.Tensor] = {"model.embed_tokens.weight": meta_sd["tok_embeddings.weight"]}
    for i in range(params["n_layers"]):
        m, h = f"layers.{i}.", f"model.layers.{i}."
        hf[h + "self_attn.q_proj.weight"] = permute_meta_to_hf(meta_sd[m + "attention.wq.weight"], n_heads)
        hf[h + "self_attn.k_proj.weight"] = permute_meta_to_hf(meta_sd[m + "attention.wk.weight"], n_kv_heads)
        hf[h + "self_attn.v_proj.weight"] = meta_sd[m + "attention.wv.weight"]
        hf[h + "self_attn.o_proj.weight"] = meta_sd[m + "attention.wo.weight"]
        hf[h + "mlp.gate_proj.weight"] = meta_sd[m + "feed_forward.w1.weight"]
        hf[h + "mlp.down_proj.weight"] = meta_sd[m + "feed_forward.w2.weight"]
        hf[h + "mlp.up_proj.weight"] = meta_sd[m + "feed_forward.w3.weight"]
        hf[h + "input_layernorm.weight"] = meta_sd[m + "attention_norm.weight"]
        hf[h + "post_attention_layernorm.weight"] = meta_sd[m + "ffn_norm.weight"]
    hf["model.norm.weight"] = meta_sd["norm.weight"]
    hf["lm_head.weight"] = meta_sd.get("output.weight", meta_sd["tok_embeddings.weight"])
    return hf


def hf_llama_config(
    params: dict,
    intermediate_size: int,
    tied: bool,
    max_position_embeddings: int = 8192,
    attn_implementation: str = "eager",
):
    """An equivalent transformers.LlamaConfig for Meta's PARAMS (FFN size from the weights)."""
    import transformers
    from transformers import LlamaConfig

    n_heads = params["n_heads"]
    rope = {"rope_type": "default", "rope_theta": float(params.get("rope_theta", 500000.0))}
    if params.get("use_scaled_rope"):
        # Constants hard-coded in llama_models.llama3.model.apply_scaling.
        rope.update(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position_embeddings=8192)
    kwargs = dict(
        vocab_size=params["vocab_size"],
        hidden_size=params["dim"],
        intermediate_size=intermediate_size,
        num_hidden_layers=params["n_layers"],
        num_attention_heads=n_heads,
        num_key_value_heads=params.get("n_kv_heads") or n_heads,
        head_dim=params["dim"] // n_heads,
        hidden_act="silu",
        rms_norm_eps=params.get("norm_eps", 1e-5),
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tied,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=128000,
        eos_token_id=128001,
        attn_implementation=attn_implementation,
    )
    if int(transformers.__version__.split(".")[0]) >= 5:
        kwargs["rope_parameters"] = rope
    else:  # transformers 4.x spelling
        kwargs["rope_theta"] = rope.pop("rope_theta")
        kwargs["rope_scaling"] = rope if rope["rope_type"] != "default" else None
    return LlamaConfig(**kwargs)


def meta_to_hf_model(
    ckpt_dir: str | Path,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "eager",
    max_position_embeddings: int = 8192,
):
    """An independent implementation: transformers.LlamaForCausalLM with the checkpoint's weights."""
    from transformers import LlamaForCausalLM

    params = read_params(ckpt_dir)
    meta_sd = load_meta_state_dict(ckpt_dir)
    tied = "output.weight" not in meta_sd
    config = hf_llama_config(
        params,
        intermediate_size=meta_sd["layers.0.feed_forward.w1.weight"].shape[0],
        tied=tied,
        max_position_embeddings=max_position_embeddings,
        attn_implementation=attn_implementation,
    )
    hf_sd = {k: v.to(dtype) for k, v in meta_to_hf_state_dict(meta_sd, params).items()}

    model = LlamaForCausalLM(config)
    model.load_state_dict(hf_sd, strict=True)
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model.to(dtype).eval()


def hf_logits(model, tokens: Sequence[int]) -> torch.Tensor:
    """float32 logits [T, vocab] from a transformers causal LM (no KV cache)."""
    with torch.inference_mode():
        out = model(input_ids=_token_tensor(tokens), use_cache=False)
    return out.logits[0].float().clone()


def meta_sample_top_p():
    """Meta's sample_top_p, taken from llama_models/llama3/generation.py.

    That module imports the multimodal model, which needs torchvision (not installable beside this
    torch build), so the function is read from its source file instead of importing the module.
    """
    import ast
    import importlib.util

    path = Path(importlib.util.find_spec("llama_models").submodule_search_locations[0]) / "llama3" / "generation.py"
    source = path.read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "sample_top_p")
    namespace = {"torch": torch}
    exec(compile(ast.Module([node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["sample_top_p"]
