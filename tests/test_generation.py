"""Generation with the notebook's own code: KV cache, sampling and chat formats, against Meta's reference."""

import json

import pytest
import torch
from llama_models.datatypes import RawMessage
from llama_models.llama3.chat_format import ChatFormat
from llama_models.llama3.tokenizer import Tokenizer

from llama3_files import (LAYER_TENSORS, LLAMA3_0_SPECIAL_TOKENS, LLAMA3_1_SPECIAL_TOKENS, Config,
                          check_checkpoint, load_checkpoint, load_llama3_tokenizer)
from make_tiny_checkpoint import llama3_tokenizer_path
from meta_reference import load_meta_transformer, meta_greedy, meta_logits, meta_sample_top_p
from notebook_code import FAST_FUNCTIONS, load_notebook_functions, use_fast_path

nb = load_notebook_functions()
PROMPT = [128000, 791, 6864, 315, 9822, 374, 12366, 13, 578]  # any ids of the Llama 3 vocabulary


def notebook_model(ckpt_dir, dtype=torch.float32, namespace=nb):
    checkpoint = load_checkpoint(ckpt_dir)
    cfg = Config.from_params(json.loads((ckpt_dir / "params.json").read_text()))
    check_checkpoint(checkpoint, cfg, str(ckpt_dir))
    return namespace["Model"](checkpoint, cfg, torch.device("cpu"), dtype)


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
def test_the_fast_path_gives_what_the_lesson_gives(dtype, tied, tiny_checkpoint_factory):
    # Section 19: stacked copies made once (in float32), fused attention, blocked row products, all swapped in
    # by name. Same matrices, same logits at every cached step (as against Meta: other kernels, other rounding),
    # same tokens; the lesson's namespace is left as it was.
    ckpt = tiny_checkpoint_factory("gqa4", dtype=dtype, tied=tied)
    fast_nb = load_notebook_functions()
    fast = use_fast_path(fast_nb, notebook_model(ckpt, namespace=fast_nb))
    plain = notebook_model(ckpt)
    assert isinstance(fast, fast_nb["StackedModel"])
    assert all(fast_nb[name] is fast_nb[replacement] for name, replacement in FAST_FUNCTIONS.items())
    assert all(nb[name] is not nb[replacement] for name, replacement in FAST_FUNCTIONS.items())
    for i in range(plain.cfg.n_layers):
        w, stored = fast_nb["layer_weights"](fast, i), nb["layer_weights"](plain, i)
        assert set(w) == {"attention_norm", "ffn_norm", "wo", "w2", "wqkv", "w13"}
        assert all(t.dtype == torch.float32 and t.is_contiguous() for t in w.values())  # blocks are views
        assert torch.equal(w["wqkv"], torch.cat([stored["wq"], stored["wk"], stored["wv"]]).float())
        assert torch.equal(w["w13"], torch.cat([stored["w1"], stored["w3"]]).float())
    tokens = PROMPT + [100, 200, 300]
    caches = [ns["new_kv_cache"](m, len(tokens)) for ns, m in ((fast_nb, fast), (nb, plain))]
    for start, n in [(0, len(PROMPT)), (len(PROMPT), 1), (len(PROMPT) + 1, 1), (len(PROMPT) + 2, 1)]:
        a, b = (ns["forward"](m, tokens[start:start + n], start, c)
                for ns, m, c in zip((fast_nb, nb), (fast, plain), caches))
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert fast_nb["generate"](fast, PROMPT, 8) == nb["generate"](plain, PROMPT, 8)


def test_a_model_too_big_to_stack_keeps_its_weights_in_the_file(tiny_checkpoint_factory):
    fast_nb = load_notebook_functions()
    fast_nb["STACK_MAX_BYTES"] = 0  # as if the model were Llama 3 8B on a laptop
    model = notebook_model(tiny_checkpoint_factory("gqa2"), namespace=fast_nb)
    assert use_fast_path(fast_nb, model) is model  # no copy: only the two speed-ups that copy nothing
    assert fast_nb["linear"] is fast_nb["linear_blocked"] and fast_nb["attention_heads"] is fast_nb["attention_heads_fused"]
    assert fast_nb["layer_weights"] is not fast_nb["stacked_layer_weights"]
    assert nb["generate"](notebook_model(tiny_checkpoint_factory("gqa2")), PROMPT, 8) == fast_nb["generate"](model, PROMPT, 8)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_the_lesson_never_copies_a_matrix(dtype, tiny_checkpoint_factory):
    # The lesson's layer_weights hands out the memory-mapped tensors themselves: a big model is never copied.
    ckpt = tiny_checkpoint_factory("gqa2")
    model = notebook_model(ckpt, dtype=dtype)
    for i in range(model.cfg.n_layers):
        w = nb["layer_weights"](model, i)
        for short in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            assert w[short].data_ptr() == model.checkpoint[f"layers.{i}.{LAYER_TENSORS[short]}"].data_ptr()


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


@pytest.mark.parametrize("p", [0.5, 0.9])
def test_sample_top_p_on_a_batch_equals_metas(p):
    # Section 18 draws one token per row in one call, as Meta's generate does for a batch.
    probs = torch.softmax(torch.randn(5, 1000) * 3, dim=-1)
    torch.manual_seed(11)
    expected = meta_sample_top_p()(probs.clone(), p).reshape(-1)
    torch.manual_seed(11)
    ours = nb["sample_top_p"](probs.clone(), p)
    assert ours.shape == (5,) and torch.equal(ours, expected)


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Capital of Peru?"},
     {"role": "assistant", "content": "Lima."}, {"role": "user", "content": "And <|eot_id|> of Chile?"}],
], ids=["one-message", "dialog-with-special-text"])
def test_llama3_chat_tokens_equal_metas_chat_format(messages):
    meta_tokenizer = Tokenizer.get_instance()
    expected = ChatFormat(meta_tokenizer).encode_dialog_prompt(
        [RawMessage(role=m["role"], content=m["content"]) for m in messages]).tokens
    ours = nb["llama3_chat_tokens"](load_llama3_tokenizer(llama3_tokenizer_path()), messages)
    assert ours == expected


def test_special_token_names_of_each_llama3_version():
    path = llama3_tokenizer_path()
    v31 = load_llama3_tokenizer(path, LLAMA3_1_SPECIAL_TOKENS)
    assert v31._special_tokens == Tokenizer(path).special_tokens  # Meta's llama-models: Llama 3.1 and later
    v30 = load_llama3_tokenizer(path, LLAMA3_0_SPECIAL_TOKENS)
    # Meta's original Llama 3 release (meta-llama/llama3, llama/tokenizer.py): reserved tokens 0-4 around the
    # header tokens, <|eot_id|> at 128009, then <|reserved_special_token_5|> ... <|reserved_special_token_250|>.
    special = v30._special_tokens
    assert len(special) == 256 and sorted(special.values()) == list(range(128000, 128256))
    assert special["<|start_header_id|>"] == 128006 and special["<|eot_id|>"] == 128009
    assert special["<|reserved_special_token_2|>"] == 128004 and special["<|reserved_special_token_4|>"] == 128008
    assert special["<|reserved_special_token_5|>"] == 128010 and special["<|reserved_special_token_250|>"] == 128255
    assert "<|eom_id|>" not in special
