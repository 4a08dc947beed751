"""scripts/convert_hf_checkpoint.py: Hugging Face safetensors folders -> Meta's layout.

The Hugging Face folders are made in transformers' own direction: a tiny random
checkpoint in Meta's layout (bf16, like Meta's) becomes a LlamaForCausalLM
(meta_reference.meta_to_hf_model: HF's q/k permutation) that save_pretrained
writes as safetensors.  Converting back must give the original bit for bit, and
Meta's reference on the converted folder must compute what transformers
computes on the Hugging Face folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import convert_hf_checkpoint as conv
import meta_reference
from make_tiny_checkpoint import ffn_hidden_dim, llama3_tokenizer_path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "convert_hf_checkpoint.py"
# params.json keys the notebook reads (besides multiple_of / ffn_dim_multiplier, checked through the FFN size).
NOTEBOOK_KEYS = ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "norm_eps", "rope_theta")

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}

# config, tied, use_scaled_rope, several shards
ROUND_TRIPS = [
    ("gqa2", False, False, False),
    ("gqa4", False, False, True),
    ("mha", True, False, False),
    ("gqa2", True, True, True),
]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hf_folder(tiny_checkpoint_factory, tmp_path_factory):
    """hf_folder(config, tied, use_scaled_rope, sharded) -> (meta_dir, hf_dir); built once, read-only."""
    cache: dict[tuple, tuple[Path, Path]] = {}

    def factory(config: str, tied: bool = False, use_scaled_rope: bool = False,
                sharded: bool = False) -> tuple[Path, Path]:
        key = (config, tied, use_scaled_rope, sharded)
        if key not in cache:
            meta_dir = tiny_checkpoint_factory(config, tied=tied, use_scaled_rope=use_scaled_rope)
            # max_position_embeddings above original_max_position_embeddings, like Llama 3.1's config.
            model = meta_reference.meta_to_hf_model(meta_dir, dtype=torch.bfloat16,
                                                    max_position_embeddings=131072)
            hf_dir = tmp_path_factory.mktemp(f"hf_{config}")
            # The embedding (and lm_head) are 16 MB each: 4 MB shards put them in shards of their own.
            model.save_pretrained(hf_dir, max_shard_size="4MB" if sharded else "10GB")
            cache[key] = (meta_dir, hf_dir)
        return cache[key]

    return factory


@pytest.fixture(scope="module")
def converted(hf_folder, tmp_path_factory):
    """converted(config, tied, use_scaled_rope, sharded) -> (meta_dir, hf_dir, dst) via the CLI's main()."""
    cache: dict[tuple, tuple[Path, Path, Path]] = {}

    def factory(*key) -> tuple[Path, Path, Path]:
        if key not in cache:
            meta_dir, hf_dir = hf_folder(*key)
            dst = tmp_path_factory.mktemp("converted") / "meta"
            assert conv.main([str(hf_dir), str(dst), "--quiet"]) == 0
            cache[key] = (meta_dir, hf_dir, dst)
        return cache[key]

    return factory


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def variant(hf_dir: Path, tmp_path: Path, edit_config=None, drop: tuple[str, ...] = (),
            name: str = "hf_variant") -> Path:
    """A copy of HF_DIR with symlinked weights and an edited config.json."""
    out = tmp_path / name
    out.mkdir()
    for p in hf_dir.iterdir():
        if p.name not in drop and p.name != "config.json":
            (out / p.name).symlink_to(p)
    config = json.loads((hf_dir / "config.json").read_text())
    if edit_config is not None:
        edit_config(config)
    if "config.json" not in drop:
        (out / "config.json").write_text(json.dumps(config))
    return out


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what fixtures printed (save_pretrained's progress bar)
    rc = conv.main(argv + ["--quiet"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# --------------------------------------------------------------------------- the permutation
@pytest.mark.parametrize("n_heads,head_dim", [(1, 2), (4, 16), (2, 32), (8, 64)])
def test_permutation_inverts_hf_permute(n_heads, head_dim):
    dim = 24
    w = torch.randn(n_heads * head_dim, dim).to(torch.bfloat16)
    # convert_llama_weights_to_hf.permute, as written in transformers.
    hf = w.view(n_heads, head_dim // 2, 2, dim).transpose(1, 2).reshape(n_heads * head_dim, dim)
    back = conv.permute_hf_to_meta(hf, n_heads).reshape(n_heads * head_dim, dim)
    assert torch.equal(back, w)
    assert torch.equal(hf, meta_reference.permute_meta_to_hf(w, n_heads))
    if head_dim > 2:  # a real reordering, so the round trip below cannot pass by doing nothing
        assert not torch.equal(hf, w)


# --------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("config,tied,scaled,sharded", ROUND_TRIPS)
def test_round_trip_is_bit_exact(converted, config, tied, scaled, sharded):
    meta_dir, hf_dir, dst = converted(config, tied, scaled, sharded)
    before = snapshot(hf_dir)
    original = meta_reference.load_meta_state_dict(meta_dir)
    result = meta_reference.load_meta_state_dict(dst)

    assert list(result) == list(original)  # same keys, in Meta's order
    assert ("output.weight" in result) == (not tied)
    for name, tensor in original.items():
        assert result[name].dtype == tensor.dtype == torch.bfloat16, name
        assert torch.equal(result[name], tensor), name
    assert sorted(p.name for p in dst.iterdir()) == ["consolidated.00.pth", "params.json"]

    # The Hugging Face folder really is in HF's layout (q permuted), so the equality above is not vacuous.
    hf_q = _hf_tensor(hf_dir, "model.layers.0.self_attn.q_proj.weight")
    assert not torch.equal(hf_q, original["layers.0.attention.wq.weight"])

    want, got = meta_reference.read_params(meta_dir), meta_reference.read_params(dst)
    for key in NOTEBOOK_KEYS:
        assert got[key] == want[key] and type(got[key]) is type(want[key]), key
    assert got.get("use_scaled_rope", False) == want["use_scaled_rope"] == scaled
    assert ffn_hidden_dim(got["dim"], got["multiple_of"], got.get("ffn_dim_multiplier")) == \
        ffn_hidden_dim(want["dim"], want["multiple_of"], want.get("ffn_dim_multiplier"))
    assert "rope_scaling_factor" not in got
    assert snapshot(hf_dir) == before  # reading never touches HF_DIR


def _hf_tensor(hf_dir: Path, name: str) -> torch.Tensor:
    from safetensors import safe_open

    for file in hf_dir.glob("*.safetensors"):
        with safe_open(file, framework="pt") as f:
            if name in f.keys():
                return f.get_tensor(name)
    raise KeyError(name)


def test_multi_shard_input(converted, hf_folder, tmp_path, capsys):
    meta_dir, hf_dir, dst = converted("gqa4", False, False, True)
    index = json.loads((hf_dir / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3 and shards == sorted(p.name for p in hf_dir.glob("model-*.safetensors"))
    original = meta_reference.load_meta_state_dict(meta_dir)
    result = meta_reference.load_meta_state_dict(dst)
    assert list(result) == list(original) and all(torch.equal(result[k], original[k]) for k in original)

    # Without the index, the shards are found by their names.
    no_index = variant(hf_dir, tmp_path, drop=("model.safetensors.index.json",))
    assert conv.main([str(no_index), str(tmp_path / "b"), "--quiet"]) == 0
    again = meta_reference.load_meta_state_dict(tmp_path / "b")
    assert list(again) == list(original) and all(torch.equal(again[k], original[k]) for k in original)

    # An index naming a shard that is not there.
    missing = variant(hf_dir, tmp_path, drop=(shards[0],), name="missing_shard")
    capsys.readouterr()
    assert conv.main([str(missing), str(tmp_path / "c"), "--quiet"]) == 2
    assert f"names shards that are missing: {shards[0]}" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_extra_tensors(hf_folder, tmp_path, capsys):
    from safetensors.torch import save_file

    meta_dir, hf_dir = hf_folder("mha", tied=True)  # one model.safetensors, no index
    assert not (hf_dir / "model.safetensors.index.json").exists()
    original = meta_reference.load_meta_state_dict(meta_dir)

    # Old transformers saved RoPE's inv_freq buffers; a tied model may still store lm_head: both are skipped.
    harmless = variant(hf_dir, tmp_path, name="harmless")
    save_file({"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8),
               "lm_head.weight": torch.zeros(original["tok_embeddings.weight"].shape, dtype=torch.bfloat16)},
              harmless / "model-extra.safetensors")
    assert run_main([str(harmless), str(tmp_path / "a")], capsys)[0] == 0
    result = meta_reference.load_meta_state_dict(tmp_path / "a")
    assert list(result) == list(original) and "output.weight" not in result

    # A tensor Meta's format has no place for.
    unknown = variant(hf_dir, tmp_path, name="unknown")
    save_file({"model.layers.0.self_attn.q_norm.weight": torch.ones(16)}, unknown / "model-extra.safetensors")
    rc, _, err = run_main([str(unknown), str(tmp_path / "b")], capsys)
    assert rc == 2 and "unexpected model.layers.0.self_attn.q_norm.weight" in err
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- logits
@pytest.mark.parametrize("config,tied,scaled,n_tokens", [
    ("gqa4", False, False, 12),
    ("gqa2", True, True, 120),  # long enough that the RoPE scaling changes the logits (checked below)
])
def test_logits_match_transformers(converted, meta_parallel, tmp_path, config, tied, scaled, n_tokens):
    from transformers import LlamaForCausalLM

    _, hf_dir, dst = converted(config, tied, scaled, False)
    tokens = torch.randint(0, 128256, (n_tokens,), generator=torch.Generator().manual_seed(1)).tolist()
    meta = meta_reference.meta_logits(meta_reference.load_meta_transformer(dst, max_seq_len=128), tokens)
    hf_model = LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    hf = meta_reference.hf_logits(hf_model, tokens)
    assert meta.shape == hf.shape == (n_tokens, 128256)
    assert (meta - hf).abs().max().item() < 1e-4

    if scaled:  # the same weights without scaling differ: the prompt is long enough to test it
        unscaled = tmp_path / "unscaled"
        unscaled.mkdir()
        (unscaled / "consolidated.00.pth").symlink_to(dst / "consolidated.00.pth")
        params = meta_reference.read_params(dst)
        assert params["use_scaled_rope"] is True
        (unscaled / "params.json").write_text(json.dumps(dict(params, use_scaled_rope=False)))
        plain = meta_reference.meta_logits(meta_reference.load_meta_transformer(unscaled, max_seq_len=128), tokens)
        assert (plain - hf).abs().max().item() > 1e-2


# --------------------------------------------------------------------------- refusals
def test_refuses_existing_dst_unless_force(hf_folder, tmp_path, capsys):
    meta_dir, hf_dir = hf_folder("gqa2")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    (dst / "params.json").write_text("{}")

    rc, out, err = run_main([str(hf_dir), str(dst)], capsys)
    assert rc == 2 and err.startswith("error: ") and "already exists" in err and "--force" in err
    assert sorted(p.name for p in dst.iterdir()) == ["notes.txt", "params.json"]
    assert (dst / "params.json").read_text() == "{}"

    rc, out, err = run_main([str(hf_dir), str(dst), "--force"], capsys)
    assert rc == 0, err
    assert (dst / "notes.txt").read_text() == "mine"  # --force replaces only our files
    assert meta_reference.read_params(dst)["dim"] == meta_reference.read_params(meta_dir)["dim"]
    assert torch.equal(meta_reference.load_meta_state_dict(dst)["norm.weight"],
                       meta_reference.load_meta_state_dict(meta_dir)["norm.weight"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dir left


def test_refuses_dst_inside_hf_dir(hf_folder, capsys):
    _, hf_dir = hf_folder("gqa2")
    before = snapshot(hf_dir)
    for dst in (hf_dir, hf_dir / "meta"):
        rc, _, err = run_main([str(hf_dir), str(dst), "--force"], capsys)
        assert rc == 2 and err.startswith("error: ") and "inside HF_DIR" in err
    assert snapshot(hf_dir) == before


@pytest.mark.parametrize("case,message", [
    ("no_config", "config.json not found"),
    ("not_llama", "unsupported architecture"),
    ("model_type", "unsupported model_type 'mistral'"),
    ("head_dim", "head_dim 32 differs from hidden_size / num_attention_heads = 16"),
    ("rope_factor", "rope scaling factor 16.0 is not supported"),
    ("rope_low_freq", "low_freq_factor = 2.0"),
    ("rope_yarn", "RoPE scaling of type 'yarn' is not supported"),
    ("untied_without_lm_head", "missing lm_head.weight"),
    ("shape", "has shape"),
    ("no_safetensors", "no model.safetensors"),
])
def test_refusals(hf_folder, tmp_path, capsys, case, message):
    _, hf_dir = hf_folder("gqa2", tied=True)
    edits = {
        "not_llama": lambda c: c.update(architectures=["MistralForCausalLM"]),
        "model_type": lambda c: c.update(model_type="mistral"),
        "head_dim": lambda c: c.update(head_dim=32),
        "rope_factor": lambda c: c.update(rope_parameters=dict(LLAMA3_ROPE, factor=16.0)),
        "rope_low_freq": lambda c: c.update(rope_parameters=dict(LLAMA3_ROPE, low_freq_factor=2.0)),
        "rope_yarn": lambda c: c.update(rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}),
        "untied_without_lm_head": lambda c: c.update(tie_word_embeddings=False),
        "shape": lambda c: c.update(intermediate_size=192),
    }
    drop = {"no_config": ("config.json",),
            "no_safetensors": tuple(p.name for p in hf_dir.glob("*.safetensors*"))}.get(case, ())
    bad = variant(hf_dir, tmp_path, edits.get(case), drop)
    dst = tmp_path / "dst"
    rc, out, err = run_main([str(bad), str(dst)], capsys)
    assert rc == 2
    assert err.startswith("error: ") and message in err, err
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_refuses_non_tiktoken_tokenizer(hf_folder, tmp_path, capsys):
    _, hf_dir = hf_folder("gqa2")
    rc, _, err = run_main([str(hf_dir), str(tmp_path / "d"), "--tokenizer", str(hf_dir / "config.json")], capsys)
    assert rc == 2 and "is not a tiktoken tokenizer.model" in err
    rc, _, err = run_main([str(hf_dir), str(tmp_path / "d"), "--tokenizer", str(tmp_path / "nope")], capsys)
    assert rc == 2 and "no such file" in err
    assert not (tmp_path / "d").exists()


# --------------------------------------------------------------------------- tokenizer, CLI
def test_tokenizer_from_original_folder(hf_folder, tmp_path, capsys):
    _, hf_dir = hf_folder("mha", tied=True)
    with_original = variant(hf_dir, tmp_path)
    (with_original / "original").mkdir()
    shutil.copyfile(llama3_tokenizer_path(), with_original / "original" / "tokenizer.model")
    rc, out, _ = run_main([str(with_original), str(tmp_path / "dst")], capsys)
    assert rc == 0
    assert (tmp_path / "dst" / "tokenizer.model").read_bytes() == llama3_tokenizer_path().read_bytes()
    assert "copied from" in out

    rc, out, _ = run_main([str(hf_dir), str(tmp_path / "dst2")], capsys)
    assert rc == 0 and not (tmp_path / "dst2" / "tokenizer.model").exists()
    assert "llama-models" in out


def test_llama32_rope_factor_is_recorded(hf_folder, tmp_path, capsys):
    _, hf_dir = hf_folder("gqa2", tied=True, use_scaled_rope=True)
    factor32 = variant(hf_dir, tmp_path, lambda c: c["rope_parameters"].update(factor=32.0))
    rc, out, _ = run_main([str(factor32), str(tmp_path / "dst")], capsys)
    assert rc == 0
    params = meta_reference.read_params(tmp_path / "dst")
    assert params["use_scaled_rope"] is True and params["rope_scaling_factor"] == 32.0
    assert 'kept as "rope_scaling_factor"' in out and "uses 8" in out


def test_cli_end_to_end(hf_folder, tmp_path):
    meta_dir, hf_dir = hf_folder("gqa2")
    dst = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(hf_dir), str(dst), "--tokenizer",
                           str(llama3_tokenizer_path())], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "converting" in proc.stderr and "writing consolidated.00.pth" in proc.stderr  # tqdm on stderr
    assert f"wrote {dst}/" in proc.stdout and "consolidated.00.pth" in proc.stdout
    assert sorted(p.name for p in dst.iterdir()) == ["consolidated.00.pth", "params.json", "tokenizer.model"]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == meta_reference.read_params(dst)

    again = subprocess.run([sys.executable, str(SCRIPT), str(hf_dir), str(dst)], capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "already exists" in again.stderr


# --------------------------------------------------------------------------- params of the real models
_LLAMA3_8B_HF = {  # meta-llama/Meta-Llama-3-8B config.json (transformers 4.40)
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0",
    "use_cache": True, "vocab_size": 128256,
}
_LLAMA31_SCALING = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192, "rope_type": "llama3"}
HF_CONFIGS = {
    "Llama-3-8B": _LLAMA3_8B_HF,
    "Llama-3.1-8B": dict(_LLAMA3_8B_HF, max_position_embeddings=131072, mlp_bias=False,
                         rope_scaling=_LLAMA31_SCALING, transformers_version="4.43.0.dev0"),
    "Llama-3.2-1B": dict(_LLAMA3_8B_HF, head_dim=64, hidden_size=2048, intermediate_size=8192,
                         max_position_embeddings=131072, mlp_bias=False, num_hidden_layers=16,
                         rope_scaling=dict(_LLAMA31_SCALING, factor=32.0), tie_word_embeddings=True,
                         transformers_version="4.45.0.dev0"),
    "Llama-3-70B": dict(_LLAMA3_8B_HF, hidden_size=8192, intermediate_size=28672, num_attention_heads=64,
                        num_hidden_layers=80),
}
_META_8B = {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
            "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}
META_PARAMS = {  # Meta's published params.json files
    "Llama-3-8B": _META_8B,
    "Llama-3.1-8B": dict(_META_8B, use_scaled_rope=True),
    "Llama-3.2-1B": {"dim": 2048, "n_layers": 16, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
                     "ffn_dim_multiplier": 1.5, "multiple_of": 256, "norm_eps": 1e-05, "rope_theta": 500000.0,
                     "use_scaled_rope": True},
    "Llama-3-70B": {"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8, "vocab_size": 128256,
                    "multiple_of": 4096, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0},
}


@pytest.mark.parametrize("model", sorted(HF_CONFIGS))
def test_params_of_real_models(model):
    params = conv.params_from_config(HF_CONFIGS[model])
    want = dict(META_PARAMS[model])
    if model == "Llama-3.2-1B":
        # Hugging Face's config says factor 32; Meta's params.json has no field for it and
        # Meta's reference hard-codes 8, so the converter keeps it in an extra key.
        want["rope_scaling_factor"] = 32.0
    assert params == want
    assert all(type(params[k]) is type(want[k]) for k in want)
    assert ffn_hidden_dim(params["dim"], params["multiple_of"], params.get("ffn_dim_multiplier")) == \
        HF_CONFIGS[model]["intermediate_size"]
    if model == "Llama-3-8B":  # the notebook's committed copy of Meta's file
        assert params == json.loads((REPO / "Meta-Llama-3-8B" / "params.json").read_text())


@pytest.mark.parametrize("descriptor,hf_model", [
    ("Llama3.1-8B", "Llama-3.1-8B"), ("Llama3.2-1B", "Llama-3.2-1B"), ("Llama-3-70B", "Llama-3-70B"),
])
def test_params_match_llama_models_sku_list(descriptor, hf_model):
    from llama_models.sku_list import resolve_model

    arch = {k: v for k, v in resolve_model(descriptor).arch_args.items() if v is not False}
    params = conv.params_from_config(HF_CONFIGS[hf_model])
    params.pop("rope_scaling_factor", None)
    assert params == arch


def test_params_from_transformers5_config():
    # transformers >= 5 writes rope_theta and the scaling into "rope_parameters".
    config = {k: v for k, v in HF_CONFIGS["Llama-3.1-8B"].items() if k not in ("rope_scaling", "rope_theta")}
    config["rope_parameters"] = dict(_LLAMA31_SCALING, rope_theta=500000.0)
    assert conv.params_from_config(config) == META_PARAMS["Llama-3.1-8B"]
    config["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    assert conv.params_from_config(config) == dict(META_PARAMS["Llama-3-8B"], rope_theta=10000.0)


def test_params_defaults_follow_transformers():
    # Missing fields mean what LlamaConfig's defaults mean, not what Meta's defaults are.
    config = {k: v for k, v in _LLAMA3_8B_HF.items()
              if k not in ("rms_norm_eps", "rope_theta", "num_key_value_heads", "rope_scaling")}
    params = conv.params_from_config(config)
    assert params["norm_eps"] == 1e-6 and params["rope_theta"] == 10000.0 and params["n_kv_heads"] == 32
    assert conv.params_from_config(dict(_LLAMA3_8B_HF, rms_norm_eps=1e-6))["norm_eps"] == 1e-6


def test_llama32_factor8_config_needs_no_extra_key():
    config = dict(HF_CONFIGS["Llama-3.2-1B"], rope_scaling=_LLAMA31_SCALING)  # the first 3.2 release said 8
    assert conv.params_from_config(config) == META_PARAMS["Llama-3.2-1B"]


@pytest.mark.parametrize("dim,intermediate_size", [
    (64, 224), (128, 384), (64, 176), (576, 1536), (960, 2560), (2048, 5632), (4096, 11008),
    (5120, 13824), (3200, 8640), (100, 1), (4096, 14336 + 3),
])
def test_ffn_params_reproduce_any_size(dim, intermediate_size):
    multiple_of, multiplier = conv.ffn_params(dim, intermediate_size)
    assert ffn_hidden_dim(dim, multiple_of, multiplier) == intermediate_size
    assert multiple_of >= 1 and (multiplier is None or multiplier > 0)


def test_ffn_params_of_tiny_configs():
    assert conv.ffn_params(64, 224) == (32, 1.3)  # gqa2: Meta's own pair is found
    assert conv.ffn_params(64, 176) == (16, None)  # mha
