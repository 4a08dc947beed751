"""The reference for batched generation: meta_generate runs Meta's own Llama3.generate on a batch of prompts.

These tests check the reference itself (that batching in Meta's loop changes nothing a greedy row computes), so
that the notebook's generate_batch can later be compared against it.
"""

import inspect
from pathlib import Path

import pytest
import torch

from meta_reference import load_meta_transformer, meta_generate, meta_generation, meta_greedy

# Three prompts of different lengths (9, 5 and 12 tokens), any ids of the Llama 3 vocabulary: decoding starts at
# the shortest one, so the other two are fed their own prompt tokens for 4 and 7 steps while row 1 generates.
PROMPTS = [
    [128000, 791, 6864, 315, 9822, 374, 12366, 13, 578],
    [128000, 791, 3363, 315, 264],
    [128000, 12805, 5304, 264, 892, 11, 1070, 574, 264, 2697, 3828, 13],
]
N_NEW = 12
MAX_SEQ_LEN = max(len(p) for p in PROMPTS) + N_NEW
CONFIGS = [("gqa2", {}), ("gqa4", {}), ("mqa", {}), ("gqa2", {"use_scaled_rope": True})]
IDS = ["gqa2", "gqa4", "mqa", "scaled-rope"]


def test_it_runs_metas_own_generate():
    generate = inspect.unwrap(meta_generation().Llama3.generate)  # under torch.inference_mode's wrapper
    assert Path(generate.__code__.co_filename).parts[-3:] == ("llama_models", "llama3", "generation.py")


@pytest.mark.parametrize("config, kw", CONFIGS, ids=IDS)
def test_greedy_rows_equal_each_prompt_alone(config, kw, tiny_checkpoint_factory, meta_parallel):
    ckpt = tiny_checkpoint_factory(config, **kw)
    batched = meta_generate(load_meta_transformer(ckpt, max_seq_len=MAX_SEQ_LEN, max_batch_size=len(PROMPTS)),
                            PROMPTS, N_NEW)
    alone = load_meta_transformer(ckpt, max_seq_len=MAX_SEQ_LEN)  # max_batch_size 1, a cache of its own
    assert batched == [meta_greedy(alone, prompt, N_NEW) for prompt in PROMPTS]
    assert all(len(row) == N_NEW for row in batched)  # the short prompts' rows are cut at max_gen_len too
    assert all(len(set(row)) > 1 for row in batched), "a degenerate model would make this test meaningless"
    assert len({tuple(row) for row in batched}) == len(PROMPTS)


@pytest.mark.parametrize("config, kw", CONFIGS, ids=IDS)
def test_a_row_stops_at_its_stop_token_while_the_others_go_on(config, kw, tiny_checkpoint_factory, meta_parallel):
    ckpt = tiny_checkpoint_factory(config, **kw)
    model = load_meta_transformer(ckpt, max_seq_len=MAX_SEQ_LEN, max_batch_size=len(PROMPTS))
    free = meta_generate(model, PROMPTS, N_NEW)
    # A token that one row generates (not first, not last) and no other row generates at all.
    row, stop = next((r, t) for r in (1, 0, 2) for t in free[r][2:-1]
                     if not any(t in other for i, other in enumerate(free) if i != r))
    stopped = meta_generate(model, PROMPTS, N_NEW, stop_tokens=[stop])
    assert stopped[row] == free[row][:free[row].index(stop) + 1]  # the stop token is kept, nothing after it
    assert stopped[row][-1] == stop and len(stopped[row]) < N_NEW
    assert [r for i, r in enumerate(stopped) if i != row] == [r for i, r in enumerate(free) if i != row]


def test_every_row_stopping_ends_the_batch(tiny_checkpoint_factory, meta_parallel):
    model = load_meta_transformer(tiny_checkpoint_factory("gqa2"), max_seq_len=MAX_SEQ_LEN,
                                  max_batch_size=len(PROMPTS))
    free = meta_generate(model, PROMPTS, N_NEW)
    stops = [row[3] for row in free]
    stopped = meta_generate(model, PROMPTS, N_NEW, stop_tokens=stops)
    for row, cut in zip(free, stopped):
        first = min(row.index(t) for t in stops if t in row)
        assert cut == row[:first + 1] and cut[-1] in stops


def test_a_batch_larger_than_max_batch_size_raises(tiny_checkpoint_factory, meta_parallel):
    model = load_meta_transformer(tiny_checkpoint_factory("gqa2"), max_seq_len=MAX_SEQ_LEN, max_batch_size=2)
    with pytest.raises(AssertionError, match=r"\(3, 2\)"):  # Meta's `assert bsz <= params.max_batch_size`
        meta_generate(model, PROMPTS, N_NEW)
    assert len(meta_generate(model, PROMPTS[:2], 2)) == 2


def test_max_seq_len_limits_every_row(tiny_checkpoint_factory, meta_parallel):
    # total_len = min(max_gen_len + max_prompt_len, max_seq_len): with max_seq_len 14 the 12-token prompt gets
    # 2 new tokens, the 5-token one 9, each the start of its free generation.
    ckpt = tiny_checkpoint_factory("gqa2")
    free = meta_generate(load_meta_transformer(ckpt, max_seq_len=MAX_SEQ_LEN, max_batch_size=3), PROMPTS, N_NEW)
    short = meta_generate(load_meta_transformer(ckpt, max_seq_len=14, max_batch_size=3), PROMPTS, N_NEW)
    assert short == [row[:14 - len(p)] for row, p in zip(free, PROMPTS)]


def test_sampling_is_metas_and_repeats_with_a_seed(tiny_checkpoint_factory, meta_parallel):
    model = load_meta_transformer(tiny_checkpoint_factory("gqa4"), max_seq_len=MAX_SEQ_LEN, max_batch_size=3)

    def sample(seed, top_p=0.9):
        torch.manual_seed(seed)  # Meta's sample_top_p draws from torch's global generator
        return meta_generate(model, PROMPTS, N_NEW, temperature=1.0, top_p=top_p)

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    assert sample(1, top_p=1e-9) == meta_generate(model, PROMPTS, N_NEW)  # top-p towards 0 is greedy


@pytest.mark.parametrize("prompts, max_gen_len, pad_id, message", [
    ([], 4, -1, "at least one prompt"),
    ([[1, 2], []], 4, -1, "non-empty"),
    ([[1, 2]], 0, -1, "at least 1"),
    ([list(range(1, MAX_SEQ_LEN + 1))], 4, -1, "no room"),
    ([[1, 2], [3, 128004, 5]], 4, 128004, "prompt 1 contains pad_id 128004"),
])
def test_what_metas_loop_would_not_continue_is_refused(prompts, max_gen_len, pad_id, message,
                                                        tiny_checkpoint_factory, meta_parallel):
    model = load_meta_transformer(tiny_checkpoint_factory("gqa2"), max_seq_len=MAX_SEQ_LEN, max_batch_size=3)
    with pytest.raises(ValueError, match=message):
        meta_generate(model, prompts, max_gen_len, pad_id=pad_id)
