"""Section 19's later steps: RoPE in real numbers, the fixed-size cache's decode step, bf16 and int8 weights.

Each check is written as a function of the implementation it checks, and is shown to fail on a broken copy:
RoPE's real form with the two numbers of each pair swapped, int8 scales taken per column instead of per row, and
int8 weights packed four to a word from consecutive columns instead of the row's four quarters.
"""

import math

import pytest
import torch

from meta_reference import load_meta_transformer, meta_logits
from notebook_code import load_notebook_functions, use_decode_step
from test_generation import PROMPT, notebook_model

nb = load_notebook_functions()


def rope_agrees(apply_rope_real, head_dim=16, n=7, scaled=False) -> bool:
    """apply_rope_real(x, cos, sin) turns random (T, H, Dh) heads as the lesson's complex apply_rope does."""
    x = torch.randn(n, 3, head_dim, generator=torch.Generator().manual_seed(0))
    freqs_cis = nb["rope_frequencies"](head_dim, n, 500000.0, scaled)
    cos, sin = nb["rope_cos_sin"](freqs_cis)
    real = apply_rope_real(x, cos[:, None], sin[:, None])  # (T, 1, Dh/2): shared by the heads
    return torch.allclose(real, nb["apply_rope"](x, freqs_cis), atol=1e-6, rtol=1e-5)


def pairs_swapped(x, cos, sin):  # a broken copy: x1 taken for x0 and x0 for x1
    x1, x0 = x.float()[..., 0::2], x.float()[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).type_as(x)


@pytest.mark.parametrize("scaled", [False, True], ids=["llama3", "llama3.1-scaled"])
def test_rope_in_real_numbers_is_the_complex_product(scaled):
    assert rope_agrees(nb["apply_rope_real"], scaled=scaled)
    assert not rope_agrees(pairs_swapped, scaled=scaled)  # the check can fail


def rows_within_half_a_step(quantize, w: torch.Tensor) -> bool:
    """quantize(w) -> (q int8, scale (rows,)): every element back within half its ROW's step, scales per row."""
    q, scale = quantize(w)
    if q.dtype != torch.int8 or q.shape != w.shape or scale.shape != (w.shape[0],) or q.abs().max() > 127:
        return False
    error = (q.float() * scale[:, None] - w.float()).abs()
    return bool((error <= scale[:, None] / 2 * (1 + 1e-5) + 1e-12).all())


def per_column(w):  # a broken copy: one scale per input column, returned as if it were per row
    scale = w.float().abs().amax(dim=0).clamp(min=1e-12) / 127
    q = torch.round(w.float() / scale).clamp(-127, 127).to(torch.int8)
    return q, scale


def test_int8_scales_are_per_row_and_every_weight_within_half_a_step():
    w = torch.randn(48, 48, generator=torch.Generator().manual_seed(1)) * torch.logspace(-3, 0, 48)[:, None]
    w[5] = 0  # a row of zeros: no division by zero
    assert rows_within_half_a_step(nb["quantize_rows"], w)
    q, scale = nb["quantize_rows"](w)
    assert q[5].eq(0).all() and torch.isfinite(scale).all()
    assert torch.equal(q.abs().amax(dim=1)[scale > 1e-11], torch.full_like(q[:, 0], 127)[scale > 1e-11])
    assert not rows_within_half_a_step(per_column, w)  # the check can fail


def test_the_int8_product_scales_after_multiplying():
    w = torch.randn(40, 24, generator=torch.Generator().manual_seed(2))
    x = torch.randn(3, 24, generator=torch.Generator().manual_seed(3))
    q, scale = nb["quantize_rows"](w)
    torch.testing.assert_close(nb["linear_int8"](x, (q, scale)), x @ (q.float() * scale[:, None]).T, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config, kw", [("gqa4", {}), ("mqa", {"tied": True, "use_scaled_rope": True})],
                         ids=["gqa4", "mqa-tied-scaled"])
def test_the_fixed_size_decode_step_gives_metas_logits(config, kw, tiny_checkpoint_factory, meta_parallel):
    ckpt = tiny_checkpoint_factory(config, dtype=torch.float32, **kw)
    ns = load_notebook_functions()
    model = use_decode_step(ns, notebook_model(ckpt, namespace=ns), "float32")
    tokens = PROMPT + [100, 200, 300]
    cache = ns["new_kv_cache"](model, len(tokens) + 4)  # larger than needed: the mask must hide the empty rows
    steps = [ns["forward"](model, PROMPT, 0, cache)]
    steps += [ns["forward"](model, [t], len(PROMPT) + i, cache) for i, t in enumerate(tokens[len(PROMPT):-1])]
    expected = meta_logits(load_meta_transformer(ckpt, max_seq_len=len(tokens)), tokens[:-1])[len(PROMPT) - 1:]
    torch.testing.assert_close(torch.stack(steps), expected, atol=1e-4, rtol=0)
    assert ns["generate"](model, PROMPT, 8) == nb["generate"](notebook_model(ckpt), PROMPT, 8)


def dequantized_model(ckpt):
    """The lesson's Model on a copy of the checkpoint whose matrices are quantize_rows' q * scale."""
    model = notebook_model(ckpt)
    matrices = [name for name, t in model.checkpoint.items() if t.ndim == 2 and name != "tok_embeddings.weight"]
    if "output.weight" not in model.checkpoint:  # tied: the int8 copy of the embedding is the output matrix
        matrices.append("output.weight")
    weights = dict(model.checkpoint)
    for name in matrices:
        q, scale = nb["quantize_rows"](weights.get(name, weights["tok_embeddings.weight"]))
        weights[name] = q.float() * scale[:, None]
    return nb["Model"](weights, model.cfg, model.device, model.dtype)


def packed_product_agrees(pack, compiled: bool) -> bool:
    """linear_packed on pack(q)'s words equals the product with the dequantized matrix, for one row and several."""
    w = torch.randn(40, 64, generator=torch.Generator().manual_seed(4))
    q, scale = nb["quantize_rows"](w)
    words = pack(q)
    torch._dynamo.reset()  # compile afresh for each packer
    product = torch.compile(nb["linear_packed"]) if compiled else nb["linear_packed"]
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(5))
    expected = x @ (q.float() * scale[:, None]).T
    return all(torch.allclose(product(rows, (words, scale)), expected[:len(rows)], atol=1e-4, rtol=1e-5)
               for rows in (x[:1], x))


def consecutive_bytes(q):  # a broken copy: word k holds columns 4k .. 4k+3, which the product does not expect
    b = q.view(q.shape[0], -1, 4).to(torch.int32) & 0xFF
    return (b[..., 0] | b[..., 1] << 8 | b[..., 2] << 16 | b[..., 3] << 24).view(torch.float32)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_four_int8_weights_to_a_word_give_the_int8_product(compiled):
    q = torch.randint(-127, 128, (6, 32), dtype=torch.int8, generator=torch.Generator().manual_seed(6))
    words = nb["pack_int8"](q)
    assert words.dtype == torch.float32 and words.shape == (6, 8) and words.nbytes == q.nbytes
    assert torch.equal(nb["unpack_rows"](words), q.float())  # every weight back, sign and column
    assert packed_product_agrees(nb["pack_int8"], compiled)
    assert not packed_product_agrees(consecutive_bytes, compiled)  # the check can fail


@pytest.mark.parametrize("tied, compiled", [(False, False), (True, False), (False, True)],
                         ids=["untied", "tied", "untied-compiled"])
def test_int8_weights_give_the_dequantized_models_logits(tied, compiled, tiny_checkpoint_factory):
    ckpt = tiny_checkpoint_factory("gqa2", dtype=torch.float32, tied=tied)
    ns = load_notebook_functions()
    model = use_decode_step(ns, notebook_model(ckpt, namespace=ns), "int8", compiled=compiled)
    # speed-up 7's words: four int8 weights each, (out, in/4) in float32 storage, and a scale per row
    assert all(isinstance(w, tuple) and w[0].dtype == torch.float32 and w[0].shape[0] == w[1].shape[0]
               for name, w in model.layers[0].items() if "norm" not in name)
    reference = dequantized_model(ckpt)
    tokens = PROMPT + [100, 200]
    cache, ref_cache = ns["new_kv_cache"](model, len(tokens)), nb["new_kv_cache"](reference, len(tokens))
    for start, n in [(0, len(PROMPT)), (len(PROMPT), 1), (len(PROMPT) + 1, 1)]:  # the prompt, then two decode steps
        torch.testing.assert_close(ns["forward"](model, tokens[start:start + n], start, cache),
                                   nb["forward"](reference, tokens[start:start + n], start, ref_cache), atol=1e-4, rtol=0)


def test_bf16_weights_keep_float32_activations(tiny_checkpoint_factory):
    ckpt = tiny_checkpoint_factory("gqa2", dtype=torch.float32)
    ns = load_notebook_functions()
    model = use_decode_step(ns, notebook_model(ckpt, namespace=ns), "bfloat16")
    assert model.dtype == torch.float32 and model.layers[0]["wqkv"].dtype == torch.bfloat16
    cache = ns["new_kv_cache"](model, len(PROMPT) + 1)
    assert cache[0].dtype == torch.float32
    logits = ns["forward"](model, PROMPT, 0, cache)
    plain = nb["forward"](notebook_model(ckpt), PROMPT)
    assert logits.dtype == torch.float32 and 0 < (logits - plain).abs().max() < 5e-2  # bf16 rounding, and no more


def test_the_compiled_decode_step_gives_the_lessons_tokens(tiny_checkpoint_factory):
    ckpt = tiny_checkpoint_factory("gqa4", dtype=torch.float32)
    ns = load_notebook_functions()
    model = use_decode_step(ns, notebook_model(ckpt, namespace=ns), "float32", compiled=True)
    assert ns["generate"](model, PROMPT, 6) == nb["generate"](notebook_model(ckpt), PROMPT, 6)
