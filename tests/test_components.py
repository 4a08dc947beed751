"""Each helper of the notebook, read from the notebook itself, against Meta's reference (llama_models.llama3.model)."""

import pytest
import torch
from llama_models.llama3 import model as meta

from llama3_files import LAYER_TENSORS, ffn_hidden_size
from notebook_code import load_notebook_functions

nb = load_notebook_functions()

# Small but not trivial sizes; N_REP = 3 so that the grouping of query heads is tested.
D, H, H_KV, T = 96, 6, 2, 11
Dh = D // H
EPS = 1e-5
THETA = 500000.0


def args(**overrides) -> meta.ModelArgs:
    values = dict(dim=D, n_layers=1, n_heads=H, n_kv_heads=H_KV, vocab_size=256, multiple_of=32,
                  ffn_dim_multiplier=1.3, norm_eps=EPS, rope_theta=THETA, max_seq_len=T, max_batch_size=1)
    return meta.ModelArgs(**(values | overrides))


def causal_mask(n: int) -> torch.Tensor:
    return torch.full((n, n), float("-inf")).triu(diagonal=1)


def randomize(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    for tensor in module.state_dict().values():
        tensor.copy_(torch.randn(tensor.shape, generator=generator) / tensor.shape[-1] ** 0.5)
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm(dtype):
    x = (torch.randn(T, D) * 3).to(dtype)
    reference = meta.RMSNorm(D, eps=EPS)
    reference.weight.data = (1 + torch.randn(D) / 10).to(dtype)
    expected = reference(x)
    ours = nb["rms_norm"](x, reference.weight.data, EPS)
    assert ours.dtype == expected.dtype == dtype
    assert torch.equal(ours, expected)  # same float32 steps, same cast: identical bits


def test_rms_norm_computes_in_float32():
    # bf16 squares lose precision: a norm computed in bf16 differs from Meta's float32 one.
    x = (torch.randn(T, D) * 3).bfloat16()
    weight = torch.ones(D, dtype=torch.bfloat16)
    in_bf16 = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight
    assert not torch.equal(nb["rms_norm"](x, weight, EPS), in_bf16)


@pytest.mark.parametrize("use_scaled", [False, True], ids=["llama3", "llama3.1-scaled"])
@pytest.mark.parametrize("head_dim, theta", [(Dh, THETA), (128, 500000.0), (64, 500000.0)])
def test_rope_frequencies(use_scaled, head_dim, theta):
    expected = meta.precompute_freqs_cis(head_dim, 4 * T, theta, use_scaled)
    ours = nb["rope_frequencies"](head_dim, 4 * T, theta, use_scaled)
    assert ours.dtype == expected.dtype == torch.complex64
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)


@pytest.mark.parametrize("factor", [8.0, 32.0], ids=["llama3.1", "llama3.2"])
def test_rope_scaling_factor_equals_metas_configurable_apply_scaling(factor):
    # Meta's later code (llama_models.llama4) takes the factor as an argument; Llama 3.2 1B/3B use 32.
    from llama_models.llama4.model import apply_scaling
    plain = 1.0 / (THETA ** (torch.arange(0, 64, 2).float() / 64))
    torch.testing.assert_close(nb["scale_rope_frequencies"](plain, factor), apply_scaling(plain, factor, 4),
                               atol=0, rtol=1e-6)


def test_rope_scaling_changes_the_slow_frequencies_only():
    plain = 1.0 / (THETA ** (torch.arange(0, 128, 2).float() / 128))
    scaled = nb["scale_rope_frequencies"](plain)
    torch.testing.assert_close(scaled, meta.apply_scaling(plain), atol=0, rtol=0)
    wavelength = 2 * torch.pi / plain
    assert torch.equal(scaled[wavelength < 8192 / 4], plain[wavelength < 8192 / 4])  # fast ones untouched
    torch.testing.assert_close(scaled[wavelength > 8192], plain[wavelength > 8192] / 8)  # slow ones / 8


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_rope(dtype):
    freqs_cis = meta.precompute_freqs_cis(Dh, T, THETA)
    xq, xk = torch.randn(1, T, H, Dh).to(dtype), torch.randn(1, T, H_KV, Dh).to(dtype)
    expected_q, expected_k = meta.apply_rotary_emb(xq, xk, freqs_cis)
    assert torch.equal(nb["apply_rope"](xq[0], freqs_cis), expected_q[0])
    assert torch.equal(nb["apply_rope"](xk[0], freqs_cis), expected_k[0])
    # one head at a time, as the notebook teaches it first
    assert torch.equal(nb["apply_rope"](xq[0, :, 2], freqs_cis), expected_q[0, :, 2])


def test_apply_rope_on_a_batch_of_rows():
    # Section 18: a batch (B, T, H, Dh) in front of the same rotations, as Meta's apply_rotary_emb takes it.
    freqs_cis = meta.precompute_freqs_cis(Dh, T, THETA)
    xq, xk = torch.randn(3, T, H, Dh), torch.randn(3, T, H_KV, Dh)
    expected_q, expected_k = meta.apply_rotary_emb(xq, xk, freqs_cis)
    assert torch.equal(nb["apply_rope"](xq, freqs_cis), expected_q)
    assert torch.equal(nb["apply_rope"](xk, freqs_cis), expected_k)


@pytest.mark.parametrize("n_kv_heads", [H_KV, H, 1], ids=["gqa", "mha", "mqa"])
def test_attention_with_gqa(n_kv_heads, meta_parallel):
    reference = meta.Attention(args(n_kv_heads=n_kv_heads))
    state = randomize(reference, seed=1)
    w = {name.split(".")[0]: tensor for name, tensor in state.items()}  # wq.weight -> wq
    x = torch.randn(1, T, D)
    freqs_cis = meta.precompute_freqs_cis(Dh, T, THETA)
    expected = reference(x, 0, freqs_cis, causal_mask(T))[0]
    ours = nb["attention"](x[0], w, freqs_cis, causal_mask(T), H, n_kv_heads)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_kv_heads", [H_KV, 1], ids=["gqa", "mqa"])
def test_attention_on_a_batch_with_a_cache_equals_metas(n_kv_heads, meta_parallel):
    # Meta's Attention with bsz = 3: a prefill of 7 positions, then one step at position 7, into its own cache.
    B, n = 3, 7
    reference = meta.Attention(args(n_kv_heads=n_kv_heads, max_batch_size=B))
    state = randomize(reference, seed=4)
    w = {name.split(".")[0]: tensor for name, tensor in state.items()}
    x = torch.randn(B, n + 1, D)
    freqs_cis = meta.precompute_freqs_cis(Dh, T, THETA)
    expected = [reference(x[:, :n], 0, freqs_cis[:n], causal_mask(n)), reference(x[:, n:], n, freqs_cis[n:n + 1], None)]
    cache = tuple(torch.zeros(B, T, n_kv_heads, Dh) for _ in range(2))  # one layer's (B, T_max, H_KV, Dh)
    ours = [nb["attention"](x[:, :n], w, freqs_cis[:n], causal_mask(n), H, n_kv_heads, cache, 0),
            nb["attention"](x[:, n:], w, freqs_cis[n:n + 1], torch.zeros(1, n + 1), H, n_kv_heads, cache, n)]
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cache[0][:, :n + 1], reference.cache_k[:B, :n + 1], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("batch", [(), (2,)], ids=["one-prompt", "batch"])
def test_the_fast_attention_pieces_equal_the_lessons(batch):
    # Section 19's replacements compute what the lesson's functions compute: fused attention, stacked matrices.
    q, k, v = torch.randn(*batch, T, H, Dh), torch.randn(*batch, T, H_KV, Dh), torch.randn(*batch, T, H_KV, Dh)
    torch.testing.assert_close(nb["attention_heads_fused"](q, k, v, causal_mask(T)),
                               nb["attention_heads"](q, k, v, causal_mask(T)), atol=1e-5, rtol=1e-5)
    w = {"wq": torch.randn(D, D), "wk": torch.randn(H_KV * Dh, D), "wv": torch.randn(H_KV * Dh, D),
         "wo": torch.randn(D, D)}
    x = torch.randn(*batch, T, D)
    stacked = {"wqkv": torch.cat([w["wq"], w["wk"], w["wv"]]), "wo": w["wo"]}
    for ours, lesson in zip(nb["project_qkv_stacked"](x, stacked, H, H_KV), nb["project_qkv"](x, w, H, H_KV)):
        assert ours.shape == lesson.shape
        torch.testing.assert_close(ours, lesson, atol=1e-5, rtol=1e-5)


def test_attention_mask_is_causal():
    # Changing a later token must not change the output at earlier positions.
    w = {name: torch.randn(shape) / D ** 0.5 for name, shape in
         {"wq": (D, D), "wk": (H_KV * Dh, D), "wv": (H_KV * Dh, D), "wo": (D, D)}.items()}
    x = torch.randn(T, D)
    changed = x.clone()
    changed[-1] += 1
    freqs_cis = nb["rope_frequencies"](Dh, T, THETA)
    a = nb["attention"](x, w, freqs_cis, causal_mask(T), H, H_KV)
    b = nb["attention"](changed, w, freqs_cis, causal_mask(T), H, H_KV)
    assert torch.equal(a[:-1], b[:-1]) and not torch.equal(a[-1], b[-1])


@pytest.mark.parametrize("multiple_of, multiplier", [(32, 1.3), (256, None), (1024, 1.3)])
def test_feed_forward_and_its_size(multiple_of, multiplier, meta_parallel):
    reference = meta.FeedForward(dim=D, hidden_dim=4 * D, multiple_of=multiple_of, ffn_dim_multiplier=multiplier)
    randomize(reference, seed=2)
    F = ffn_hidden_size(D, multiple_of, multiplier)
    assert reference.w1.weight.shape == (F, D)
    x = torch.randn(T, D)
    expected = reference(x[None])[0]
    w = {"w1": reference.w1.weight, "w2": reference.w2.weight, "w3": reference.w3.weight}
    ours = nb["feed_forward"](x, w)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    stacked = {"w13": torch.cat([w["w1"], w["w3"]]), "w2": w["w2"]}  # section 19: one product instead of two
    torch.testing.assert_close(nb["feed_forward_stacked"](x, stacked), expected, atol=1e-5, rtol=1e-5)


def test_ffn_hidden_size_of_llama3_8b():
    # Meta's FeedForward, built with the 8B's params.json values, is 14336 wide.
    assert ffn_hidden_size(4096, 1024, 1.3) == 14336


def test_transformer_layer(meta_parallel):
    reference = meta.TransformerBlock(0, args())
    state = randomize(reference, seed=3)
    w = {short: state[name] for short, name in LAYER_TENSORS.items()}
    x = torch.randn(1, T, D)
    freqs_cis = meta.precompute_freqs_cis(Dh, T, THETA)
    expected = reference(x, 0, freqs_cis, causal_mask(T))[0]
    ours = nb["transformer_layer"](x[0], w, freqs_cis, causal_mask(T), H, H_KV, EPS)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(T, 64), (64,)], ids=["rows", "one-vector"])
def test_linear_converts_in_blocks_without_changing_the_result(shape):
    # A bf16 matrix with more rows than one 8 MiB float32 block holds, plus a remainder.
    cols = 64
    rows = 2 * (nb["CHUNK_BYTES"] // (cols * 4)) + 123
    w = torch.randn(rows, cols).bfloat16()
    x = torch.randn(shape)
    torch.testing.assert_close(nb["linear"](x, w), x @ w.float().T, atol=1e-5, rtol=1e-5)
    assert nb["linear"](x, w.float()).shape == (*shape[:-1], rows)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("rows", [96, 97])
@pytest.mark.parametrize("shape", [(1, 64), (64,)], ids=["one-row", "one-vector"])
def test_linear_blocked_one_float32_row_gives_x_times_w_transposed(threads, rows, shape):
    # One row is cut into one block of w's rows per thread when the blocks divide w (96 rows), plainly otherwise
    # (97 rows, or a transposed view of a matrix).
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        w, x = torch.randn(rows, 64), torch.randn(shape)
        for matrix in (w, torch.randn(64, rows).T):
            y = nb["linear_blocked"](x, matrix)
            assert y.shape == (*shape[:-1], rows)
            torch.testing.assert_close(y, x @ matrix.T, atol=1e-5, rtol=1e-5)
    finally:
        torch.set_num_threads(old)


def test_linear_blocked_one_float32_row_is_one_batched_product_over_blocks():
    # The speed of decoding rests on this path (scripts/benchmark.py measures it); make sure it is taken, and
    # that the lesson's own linear stays the plain x @ w.T.
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        w, x = torch.randn(96, 64), torch.randn(1, 64)
        ops = {}
        for name, dtype in [("linear_blocked", torch.float32), ("linear_blocked", torch.bfloat16),
                            ("linear", torch.float32)]:
            with torch.profiler.profile() as profile:
                nb[name](x.to(dtype), w.to(dtype))
            ops[name, dtype] = {e.key for e in profile.key_averages()} & {"aten::bmm", "aten::mm"}
        assert ops == {("linear_blocked", torch.float32): {"aten::bmm"},
                       ("linear_blocked", torch.bfloat16): {"aten::mm"},  # bf16 keeps the plain road
                       ("linear", torch.float32): {"aten::mm"}}
    finally:
        torch.set_num_threads(old)
