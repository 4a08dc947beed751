"""Section 18: several prompts at once, the notebook's generate_batch against Meta's own batched generate."""

import dataclasses
import json

import pytest
import torch

from llama3_files import Config, InputError, check_checkpoint, load_checkpoint
from meta_reference import load_meta_transformer, meta_generate
from notebook_code import load_notebook_functions

nb = load_notebook_functions()
# Three prompts of different lengths (any ids of the Llama 3 vocabulary): 9, 5 and 12 tokens.
PROMPTS = [[128000, 791, 6864, 315, 9822, 374, 12366, 13, 578], [128000, 9906, 1917, 11, 358],
           [128000, 40, 1093, 311, 1518, 264, 2466, 3363, 320, 279, 11963, 13]]


def notebook_model(ckpt_dir, dtype=torch.float32):
    cfg = Config.from_params(json.loads((ckpt_dir / "params.json").read_text()))
    checkpoint = load_checkpoint(ckpt_dir)
    check_checkpoint(checkpoint, cfg, str(ckpt_dir))
    return nb["Model"](checkpoint, cfg, torch.device("cpu"), dtype)


@pytest.mark.parametrize("config, kw", [("gqa2", {}), ("gqa4", {}), ("mqa", {}), ("gqa2", {"use_scaled_rope": True}),
                                        ("mha", {"tied": True})], ids=["gqa2", "gqa4", "mqa", "scaled-rope", "tied"])
def test_a_greedy_batch_equals_metas_generate_and_each_prompt_alone(config, kw, tiny_checkpoint_factory, meta_parallel):
    ckpt = tiny_checkpoint_factory(config, **kw)
    model = notebook_model(ckpt)
    n_new = 10
    batch = nb["generate_batch"](model, PROMPTS, n_new)
    reference = load_meta_transformer(ckpt, max_seq_len=max(map(len, PROMPTS)) + n_new, max_batch_size=len(PROMPTS))
    assert batch == meta_generate(reference, PROMPTS, n_new)
    assert batch == [nb["generate"](model, p, n_new) for p in PROMPTS]
    assert all(len(row) == n_new for row in batch) and len({tuple(row) for row in batch}) > 1


def test_each_row_stops_at_its_own_stop_token(tiny_checkpoint_factory, meta_parallel):
    ckpt = tiny_checkpoint_factory("gqa4")
    model = notebook_model(ckpt)
    free = nb["generate_batch"](model, PROMPTS, 12)
    stop = free[1][4]  # row 1's fifth token: row 1 stops there, the others wherever (if ever) they write it
    stopped = nb["generate_batch"](model, PROMPTS, 12, stop_tokens=[stop])
    for row, full in zip(stopped, free):
        assert row == (full[:full.index(stop) + 1] if stop in full else full)
    assert len(stopped[1]) <= 5 and stopped[1][-1] == stop
    assert stopped == [nb["generate"](model, p, 12, stop_tokens=[stop]) for p in PROMPTS]
    reference = load_meta_transformer(ckpt, max_seq_len=max(map(len, PROMPTS)) + 12, max_batch_size=len(PROMPTS))
    assert stopped == meta_generate(reference, PROMPTS, 12, stop_tokens=[stop])


def test_the_context_caps_the_batch_as_in_metas_generate(tiny_checkpoint_factory, meta_parallel):
    # total_len = min(longest prompt + max_new_tokens, max_seq_len): the longest prompt gets fewer new tokens.
    ckpt = tiny_checkpoint_factory("gqa2")
    model = notebook_model(ckpt)
    max_seq_len = max(map(len, PROMPTS)) + 3
    model.cfg = dataclasses.replace(model.cfg, max_seq_len=max_seq_len)
    batch = nb["generate_batch"](model, PROMPTS, 8)
    assert [len(row) for row in batch] == [min(8, max_seq_len - len(p)) for p in PROMPTS]
    assert batch == meta_generate(load_meta_transformer(ckpt, max_seq_len=max_seq_len, max_batch_size=3), PROMPTS, 8)


def test_a_sampled_batch_is_repeatable_and_top_p_towards_zero_is_greedy(tiny_checkpoint_factory):
    model = notebook_model(tiny_checkpoint_factory("gqa2"))

    def sample(seed, top_p=0.95):
        return nb["generate_batch"](model, PROMPTS, 8, (), 1.0, top_p, torch.Generator().manual_seed(seed))

    assert sample(1) == sample(1) and sample(1) != sample(2)
    assert sample(3, top_p=1e-9) == nb["generate_batch"](model, PROMPTS, 8)


@pytest.mark.parametrize("prompts, max_batch_size, expected", [
    ([], 4, "needs 1 to 4 prompts (got 0)"),
    ([PROMPTS[0], []], 4, "none empty (lengths [9, 0])"),
    (PROMPTS, 2, "needs 1 to 2 prompts (got 3)"),
], ids=["empty-list", "empty-prompt", "larger-than-max-batch-size"])
def test_a_bad_batch_is_a_clear_error(prompts, max_batch_size, expected, tiny_checkpoint_factory):
    model = notebook_model(tiny_checkpoint_factory("gqa2"))
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        nb["generate_batch"](model, prompts, 4, max_batch_size=max_batch_size)


def test_a_prompt_longer_than_the_context_is_a_clear_error(tiny_checkpoint_factory):
    model = notebook_model(tiny_checkpoint_factory("gqa2"))
    model.cfg = dataclasses.replace(model.cfg, max_seq_len=12)
    with pytest.raises(InputError, match="a prompt of 12 tokens leaves no room in the context of 12 tokens"):
        nb["generate_batch"](model, PROMPTS, 4)
