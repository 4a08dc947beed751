"""Generation with the notebook's own code: KV cache, sampling and chat formats, against Meta's reference."""

import json

import pytest
import torch
from llama_models.datatypes import RawMessage
from llama_models.llama3.chat_format import ChatFormat
from llama_models.llama3.tokenizer import Tokenizer

from make_tiny_checkpoint import llama3_tokenizer_path
from meta_reference import load_meta_transformer, meta_greedy, meta_logits, meta_sample_top_p
from notebook_code import load_notebook_functions

nb = load_notebook_functions()
PROMPT = [128000, 791, 6864, 315, 9822, 374, 12366, 13, 578]  # any ids of the Llama 3 vocabulary


def notebook_model(ckpt_dir, dtype=torch.float32):
    checkpoint = nb["load_checkpoint"](ckpt_dir)
    cfg = nb["Config"].from_params(json.loads((ckpt_dir / "params.json").read_text()))
    nb["check_checkpoint"](checkpoint, cfg, str(ckpt_dir))
    return nb["Model"](checkpoint, cfg, torch.device("cpu"), dtype)


def greedy_without_cache(model, tokens, n):
    tokens = list(tokens)
    for _ in range(n):
        tokens.append(int(nb["forward"](model, tokens).argmax()))
    return tokens[-n:]


@pytest.mark.parametrize("config, kw", [("gqa2", {}), ("gqa4", {}), ("mqa", {}), ("gqa2", {"use_scaled_rope": True})],
                         ids=["gqa2", "gqa4", "mqa", "scaled-rope"])
def test_cached_generation_equals_uncached_and_meta(config, kw, tiny_checkpoint_factory, meta_parallel):
    ckpt = tiny_checkpoint_factory(config, **kw)
    model = notebook_model(ckpt)
    n_new = 12
    cached = nb["generate"](model, PROMPT, n_new)
    assert cached == greedy_without_cache(model, PROMPT, n_new)
    reference = load_meta_transformer(ckpt, max_seq_len=len(PROMPT) + n_new)
    assert cached == meta_greedy(reference, PROMPT, n_new)
    assert len(set(cached)) > 1, "a degenerate model would make this test meaningless"


@pytest.mark.parametrize("config, kw", [("gqa4", {}), ("mha", {"tied": True})], ids=["gqa4", "tied"])
def test_each_cached_step_equals_metas_logits(config, kw, tiny_checkpoint_factory, meta_parallel):
    # Logits, not tokens: a random tied model only repeats its last token, whatever the cache does.
    ckpt = tiny_checkpoint_factory(config, **kw)
    model = notebook_model(ckpt)
    tokens = PROMPT + [100, 200, 300]
    cache = nb["new_kv_cache"](model, len(tokens))
    steps = [nb["forward"](model, PROMPT, 0, cache)]
    steps += [nb["forward"](model, [t], len(PROMPT) + i, cache) for i, t in enumerate(tokens[len(PROMPT):-1])]
    expected = meta_logits(load_meta_transformer(ckpt, max_seq_len=len(tokens)), tokens[:-1])[len(PROMPT) - 1:]
    torch.testing.assert_close(torch.stack(steps), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype, tied", [(torch.bfloat16, False), (torch.float32, True)], ids=["bf16", "fp32-tied"])
def test_prepared_layers_give_what_the_stored_weights_give(dtype, tied, tiny_checkpoint_factory, monkeypatch):
    # A small float32 model computes with copies made once (stacked, converted to float32); a big one reads
    # the memory-mapped file at every step. Same matrices, same logits at every cached step, same tokens.
    ckpt = tiny_checkpoint_factory("gqa4", dtype=dtype, tied=tied)
    prepared = notebook_model(ckpt)
    assert prepared.layers is not None and prepared.output is not None
    monkeypatch.setitem(nb, "PREPARED_MAX_BYTES", 0)  # as if the model were too big to copy
    stored = notebook_model(ckpt)
    assert stored.layers is None and stored.output is None
    for i in range(stored.cfg.n_layers):
        w, w_stored = nb["layer_weights"](prepared, i), nb["layer_weights"](stored, i)
        assert w.keys() == w_stored.keys() | {"wqkv", "w13"}
        assert all(torch.equal(w[k], w_stored[k].float()) and w[k].dtype == torch.float32 for k in w_stored)
        assert torch.equal(w["wqkv"], torch.cat([w["wq"], w["wk"], w["wv"]]))
        assert torch.equal(w["w13"], torch.cat([w["w1"], w["w3"]]))
        assert all(w[k].is_contiguous() for k in w)  # row-major, as stored: linear's one-row blocks are views
        assert w["wq"].data_ptr() == w["wqkv"].data_ptr() and w["w1"].data_ptr() == w["w13"].data_ptr()  # views
    assert torch.equal(nb["output_matrix"](prepared), nb["output_matrix"](stored).float())
    tokens = PROMPT + [100, 200, 300]
    caches = [nb["new_kv_cache"](m, len(tokens)) for m in (prepared, stored)]
    for start, n in [(0, len(PROMPT)), (len(PROMPT), 1), (len(PROMPT) + 1, 1), (len(PROMPT) + 2, 1)]:
        a, b = (nb["forward"](m, tokens[start:start + n], start, c) for m, c in zip((prepared, stored), caches))
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)  # as against Meta: other kernels, other rounding
    assert nb["generate"](prepared, PROMPT, 8) == nb["generate"](stored, PROMPT, 8)


def test_models_computed_in_bf16_are_never_copied(tiny_checkpoint_factory):
    model = notebook_model(tiny_checkpoint_factory("gqa2"), dtype=torch.bfloat16)
    assert model.layers is None and model.output is None  # bf16 reads the file: a big model is never copied


def test_generation_stops_at_a_stop_token(tiny_checkpoint_factory):
    model = notebook_model(tiny_checkpoint_factory("gqa2"))
    free = nb["generate"](model, PROMPT, 10)
    stop = free[3]
    stopped = nb["generate"](model, PROMPT, 10, stop_tokens=[stop])
    assert stopped == free[:free.index(stop) + 1]
    shown = []
    nb["generate"](model, PROMPT, 10, stop_tokens=[stop], on_token=shown.append)
    assert shown == stopped[:-1]  # the stop token ends the text; it is not shown


def test_sampling_is_repeatable_with_a_seed(tiny_checkpoint_factory):
    model = notebook_model(tiny_checkpoint_factory("gqa2"))

    def sample(seed):
        return nb["generate"](model, PROMPT, 16, (), 1.0, 0.95, torch.Generator().manual_seed(seed))

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    assert sample(1) != nb["generate"](model, PROMPT, 16)  # at temperature 1 it is not greedy


def test_top_p_towards_zero_is_greedy(tiny_checkpoint_factory):
    model = notebook_model(tiny_checkpoint_factory("gqa4"))
    greedy = nb["generate"](model, PROMPT, 12)
    for seed in range(3):
        assert nb["generate"](model, PROMPT, 12, (), 1.0, 1e-9, torch.Generator().manual_seed(seed)) == greedy


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9, 1.0])
def test_sample_top_p_equals_metas(p):
    probs = torch.softmax(torch.randn(4, 1000) * 3, dim=-1)
    for row in probs:
        torch.manual_seed(7)
        expected = int(meta_sample_top_p()(row.clone()[None], p))
        torch.manual_seed(7)  # with no generator both draw from torch's global generator
        assert nb["sample_top_p"](row.clone(), p) == expected


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Capital of Peru?"},
     {"role": "assistant", "content": "Lima."}, {"role": "user", "content": "And <|eot_id|> of Chile?"}],
], ids=["one-message", "dialog-with-special-text"])
def test_llama3_chat_tokens_equal_metas_chat_format(messages):
    meta_tokenizer = Tokenizer.get_instance()
    expected = ChatFormat(meta_tokenizer).encode_dialog_prompt(
        [RawMessage(role=m["role"], content=m["content"]) for m in messages]).tokens
    ours = nb["llama3_chat_tokens"](nb["load_llama3_tokenizer"](llama3_tokenizer_path()), messages)
    assert ours == expected


def test_special_token_names_of_each_llama3_version():
    path = llama3_tokenizer_path()
    v31 = nb["load_llama3_tokenizer"](path, nb["LLAMA3_1_SPECIAL_TOKENS"])
    assert v31._special_tokens == Tokenizer(path).special_tokens  # Meta's llama-models: Llama 3.1 and later
    v30 = nb["load_llama3_tokenizer"](path, nb["LLAMA3_0_SPECIAL_TOKENS"])
    # Meta's original Llama 3 release (meta-llama/llama3, llama/tokenizer.py): reserved tokens 0-4 around the
    # header tokens, <|eot_id|> at 128009, then <|reserved_special_token_5|> ... <|reserved_special_token_250|>.
    special = v30._special_tokens
    assert len(special) == 256 and sorted(special.values()) == list(range(128000, 128256))
    assert special["<|start_header_id|>"] == 128006 and special["<|eot_id|>"] == 128009
    assert special["<|reserved_special_token_2|>"] == 128004 and special["<|reserved_special_token_4|>"] == 128008
    assert special["<|reserved_special_token_5|>"] == 128010 and special["<|reserved_special_token_250|>"] == 128255
    assert "<|eom_id|>" not in special
