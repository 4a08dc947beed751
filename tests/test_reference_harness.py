"""Tests of the test harness itself: tiny checkpoints and Meta's reference model.

Everything else in the suite trusts these pieces, so each is checked against
something independent: Meta's own module shapes, hand-computed FFN sizes,
Hugging Face's LlamaForCausalLM, and cache-free recomputation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import make_tiny_checkpoint as mtc
import meta_reference as mr

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_tiny_checkpoint.py"
ALL_CONFIGS = sorted(mtc.CONFIGS)

# "The quick brown fox jumps over the lazy dog." with <|begin_of_text|> (Llama 3 ids),
# plus a few more ids spread over the vocabulary (incl. the top special-token range).
PROMPT = [128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 220, 60000, 128255, 100, 5]


# --------------------------------------------------------------------------- checkpoint files
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_checkpoint_matches_meta_transformer(tiny_checkpoint_factory, meta_parallel, config, tied):
    ckpt = tiny_checkpoint_factory(config, tied=tied)
    assert sorted(p.name for p in ckpt.iterdir()) == ["consolidated.00.pth", "params.json", "tokenizer.model"]

    params = json.loads((ckpt / "params.json").read_text())
    assert params == {**mtc.CONFIGS[config], "use_scaled_rope": False}

    sd = mr.load_meta_state_dict(ckpt)
    meta = mr.meta_components()
    expected = meta.Transformer(meta.ModelArgs(**params, max_seq_len=8, max_batch_size=1))
    expected_sd = expected.state_dict()
    if tied:
        del expected_sd["output.weight"]
    assert list(sd) == list(expected_sd), "key set/order differs from Meta's Transformer.state_dict()"
    for k, v in sd.items():
        assert v.shape == expected_sd[k].shape, k
        assert v.dtype == torch.bfloat16, k  # Meta's 8B on-disk dtype is the default
        assert torch.isfinite(v.float()).all(), k
    assert ("output.weight" in sd) is (not tied)

    # Strict load of exactly these tensors (plus tok_embeddings as output when tied).
    model = mr.load_meta_transformer(ckpt, max_seq_len=8)
    assert torch.equal(model.tok_embeddings.weight, sd["tok_embeddings.weight"].float())
    out_src = sd["tok_embeddings.weight"] if tied else sd["output.weight"]
    assert torch.equal(model.output.weight, out_src.float())
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize(
    "dim, multiple_of, mult, expected",
    [
        (64, 32, 1.3, 224),  # gqa2: int(2*256/3)=170 -> int(1.3*170)=221 -> 224
        (128, 64, None, 384),  # gqa4: 341 -> 384
        (64, 16, None, 176),  # mha: 170 -> 176
        (64, 32, None, 192),  # mqa: 170 -> 192
        (4096, 1024, 1.3, 14336),  # Llama 3 8B
        (8192, 4096, 1.3, 28672),  # Llama 3 70B
        (2048, 256, 1.5, 8192),  # Llama 3.2 1B
        (3072, 256, 1.0, 8192),  # Llama 3.2 3B
    ],
)
def test_ffn_hidden_dim_formula(dim, multiple_of, mult, expected):
    assert mtc.ffn_hidden_dim(dim, multiple_of, mult) == expected


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_ffn_size_equals_meta_feedforward(tiny_checkpoint_factory, meta_parallel, config):
    params = mtc.CONFIGS[config]
    meta = mr.meta_components()
    ff = meta.FeedForward(dim=params["dim"], hidden_dim=4 * params["dim"], multiple_of=params["multiple_of"],
                          ffn_dim_multiplier=params["ffn_dim_multiplier"])
    hidden = mtc.ffn_hidden_dim(params["dim"], params["multiple_of"], params["ffn_dim_multiplier"])
    assert ff.w1.weight.shape == (hidden, params["dim"])
    sd = mr.load_meta_state_dict(tiny_checkpoint_factory(config))
    assert sd["layers.0.feed_forward.w1.weight"].shape == (hidden, params["dim"])


def test_seed_dtype_and_flags(tmp_path):
    a = mtc.make_tiny_checkpoint(tmp_path / "a", config="mha", seed=1)
    b = mtc.make_tiny_checkpoint(tmp_path / "b", config="mha", seed=1)
    c = mtc.make_tiny_checkpoint(tmp_path / "c", config="mha", seed=2)
    d = mtc.make_tiny_checkpoint(tmp_path / "d", config="mha", seed=1, dtype=torch.float32, use_scaled_rope=True)
    sa, sb, sc, sd = (mr.load_meta_state_dict(p) for p in (a, b, c, d))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layers.0.attention.wq.weight"], sc["layers.0.attention.wq.weight"])
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert torch.equal(sd["layers.1.feed_forward.w2.weight"].bfloat16(), sa["layers.1.feed_forward.w2.weight"])
    assert json.loads((d / "params.json").read_text())["use_scaled_rope"] is True
    assert json.loads((a / "params.json").read_text())["use_scaled_rope"] is False
    # Norm gains are near 1 but not all exactly 1.
    g = sa["norm.weight"].float()
    assert (g - 1).abs().max() < 0.6 and (g != 1).any()
    with pytest.raises(FileExistsError, match="non-empty"):
        mtc.make_tiny_checkpoint(a, config="mha")
    with pytest.raises(ValueError, match="unknown config"):
        mtc.make_tiny_checkpoint(tmp_path / "e", config="nope")


def test_tokenizer_is_llama3(tiny_checkpoint_factory):
    from llama_models.llama3.tokenizer import Tokenizer

    ckpt = tiny_checkpoint_factory("gqa2")
    assert (ckpt / "tokenizer.model").read_bytes() == mtc.llama3_tokenizer_path().read_bytes()
    tok = Tokenizer(ckpt / "tokenizer.model")
    assert tok.n_words == mtc.LLAMA3_VOCAB_SIZE
    assert tok.encode("The quick brown fox jumps over the lazy dog.", bos=True, eos=False) == PROMPT[:11]


# --------------------------------------------------------------------------- Meta reference
def test_init_model_parallel_is_idempotent():
    import fairscale.nn.model_parallel.initialize as fs_init
    import torch.distributed as dist

    for _ in range(3):
        mr.init_model_parallel()
    assert dist.is_initialized() and dist.get_world_size() == 1 and dist.get_rank() == 0
    assert fs_init.model_parallel_is_initialized()
    assert fs_init.get_model_parallel_world_size() == 1


def test_meta_output_is_non_degenerate(tiny_checkpoint_factory, meta_parallel):
    model = mr.load_meta_transformer(tiny_checkpoint_factory("gqa2"))
    logits = mr.meta_logits(model, PROMPT)
    assert logits.shape == (len(PROMPT), mtc.LLAMA3_VOCAB_SIZE) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert 0.3 < logits.std() < 10
    assert len(set(logits.argmax(-1).tolist())) > len(PROMPT) // 2  # predictions depend on context
    # Softmax is not saturated (a greedy decode would not be trivially stable).
    assert logits.softmax(-1).max() < 0.5
    assert not logits.requires_grad and not logits.is_inference()


HF_CASES = [
    pytest.param("gqa2", {}, id="gqa2"),
    pytest.param("gqa4", {}, id="gqa4"),
    pytest.param("mha", {}, id="mha"),
    pytest.param("mqa", {}, id="mqa"),
    pytest.param("gqa2", {"tied": True}, id="gqa2-tied"),
    pytest.param("gqa4", {"tied": True, "seed": 3}, id="gqa4-tied"),
    pytest.param("gqa2", {"use_scaled_rope": True}, id="gqa2-scaled-rope"),
]


@pytest.mark.parametrize("config, kw", HF_CASES)
def test_meta_matches_huggingface(tiny_checkpoint_factory, meta_parallel, config, kw):
    ckpt = tiny_checkpoint_factory(config, **kw)
    meta = mr.load_meta_transformer(ckpt)
    hf = mr.meta_to_hf_model(ckpt)
    assert hf.config._attn_implementation == "eager"
    assert hf.config.tie_word_embeddings is bool(kw.get("tied", False))
    ref = mr.meta_logits(meta, PROMPT)
    got = mr.hf_logits(hf, PROMPT)
    assert ref.std() > 0.3
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4)


def test_permutation_direction_is_meta_to_hf(tiny_checkpoint_factory, meta_parallel):
    """Negative controls: unpermuted or inversely permuted q/k must NOT match Meta."""
    ckpt = tiny_checkpoint_factory("gqa4")  # head_dim 16: the two permutations differ
    ref = mr.meta_logits(mr.load_meta_transformer(ckpt), PROMPT)
    sd = mr.load_meta_state_dict(ckpt)
    params = mr.read_params(ckpt)
    hf = mr.meta_to_hf_model(ckpt)
    torch.testing.assert_close(mr.hf_logits(hf, PROMPT), ref, rtol=0, atol=1e-4)

    w = sd["layers.0.attention.wq.weight"]
    assert torch.equal(mr.permute_hf_to_meta(mr.permute_meta_to_hf(w, 8), 8), w)
    assert not torch.equal(mr.permute_hf_to_meta(w, 8), mr.permute_meta_to_hf(w, 8))

    for name, fn in [("none", lambda w, n: w), ("inverse", mr.permute_hf_to_meta)]:
        with torch.no_grad():
            for i in range(params["n_layers"]):
                attn = hf.model.layers[i].self_attn
                attn.q_proj.weight.copy_(fn(sd[f"layers.{i}.attention.wq.weight"].float(), params["n_heads"]))
                attn.k_proj.weight.copy_(fn(sd[f"layers.{i}.attention.wk.weight"].float(), params["n_kv_heads"]))
        diff = (mr.hf_logits(hf, PROMPT) - ref).abs().max().item()
        assert diff > 1e-2, f"q/k permutation '{name}' unexpectedly matches Meta (diff {diff})"


def test_scaled_rope_frequencies_match_huggingface(tiny_checkpoint_factory, meta_parallel):
    meta = mr.meta_components()
    params = mr.read_params(tiny_checkpoint_factory("gqa2", use_scaled_rope=True))
    head_dim = params["dim"] // params["n_heads"]
    scaled = meta.precompute_freqs_cis(head_dim, 4, params["rope_theta"], use_scaled=True)[1].angle()
    plain = meta.precompute_freqs_cis(head_dim, 4, params["rope_theta"], use_scaled=False)[1].angle()
    assert not torch.allclose(scaled, plain)  # the tiny head_dim does exercise the scaling

    hf = mr.meta_to_hf_model(tiny_checkpoint_factory("gqa2", use_scaled_rope=True))
    rot = hf.model.rotary_emb
    assert getattr(rot, "attention_scaling", 1.0) == 1.0
    torch.testing.assert_close(rot.inv_freq.float(), scaled, rtol=1e-6, atol=0)


def test_meta_greedy_cache_equals_full_recompute(tiny_checkpoint_factory, meta_parallel):
    model = mr.load_meta_transformer(tiny_checkpoint_factory("gqa4"), max_seq_len=32)
    prompt = PROMPT[:7]
    n_new = 8
    cached = mr.meta_greedy(model, prompt, n_new)
    assert len(cached) == n_new

    seq, full = list(prompt), []
    for _ in range(n_new):
        nxt = int(mr.meta_logits(model, seq)[-1].argmax())
        full.append(nxt)
        seq.append(nxt)
    assert cached == full
    assert len(set(cached)) > 1

    # Stronger: each cached single-token step gives the same logits as the full pass.
    ref = mr.meta_logits(model, seq)
    mr.meta_logits(model, prompt)  # refill the cache for positions 0..6
    for pos in range(len(prompt), len(seq)):
        with torch.inference_mode():
            step = model.forward(torch.tensor([[seq[pos]]]), pos)[0, -1].float()
        torch.testing.assert_close(step, ref[pos], rtol=0, atol=1e-4)

    # Stop tokens end generation and are included, as in Meta's generate().
    assert mr.meta_greedy(model, prompt, n_new, stop_tokens=[full[2]]) == full[: full.index(full[2]) + 1]
    with pytest.raises(ValueError, match="max_seq_len"):
        mr.meta_greedy(model, prompt, 32)


def test_meta_greedy_matches_huggingface_greedy(tiny_checkpoint_factory, meta_parallel):
    ckpt = tiny_checkpoint_factory("gqa2")
    prompt = PROMPT[:5]
    ours = mr.meta_greedy(mr.load_meta_transformer(ckpt, max_seq_len=32), prompt, 6)
    hf = mr.meta_to_hf_model(ckpt)
    seq = list(prompt)
    for _ in range(6):
        seq.append(int(mr.hf_logits(hf, seq)[-1].argmax()))
    assert ours == seq[len(prompt):]


# --------------------------------------------------------------------------- CLI
def _cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cli_writes_and_refuses_existing_dir(tmp_path):
    out = tmp_path / "ckpt"
    r = _cli(out, "--config", "mqa", "--tied", "--use-scaled-rope", "--dtype", "float32", "--seed", "5")
    assert r.returncode == 0, r.stderr
    params = json.loads((out / "params.json").read_text())
    assert params["use_scaled_rope"] is True and params["n_kv_heads"] == 1
    sd = mr.load_meta_state_dict(out)
    assert "output.weight" not in sd and sd["norm.weight"].dtype == torch.float32
    before = (out / "consolidated.00.pth").read_bytes()

    r = _cli(out, "--config", "gqa2")
    assert r.returncode != 0
    assert "non-empty" in r.stderr and "--force" in r.stderr
    assert (out / "consolidated.00.pth").read_bytes() == before
    assert json.loads((out / "params.json").read_text())["n_kv_heads"] == 1

    r = _cli(out, "--config", "gqa2", "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "params.json").read_text())["n_kv_heads"] == 2
    assert mr.load_meta_state_dict(out)["norm.weight"].dtype == torch.bfloat16
