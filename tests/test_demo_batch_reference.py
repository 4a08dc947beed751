"""The transformers reference for batched generation on the demo model (SmolLM2-135M-Instruct, real weights).

benchmark.hf_generate_batch runs transformers' batched generate(do_sample=False) with the prompts left-padded.
Measured here: each of its rows equals transformers' generate on that prompt alone, and the notebook's own
generate on that prompt alone, so that the notebook's generate_batch can be held to the same rows. Left padding
changes the float32 rounding (the masked attention and the batched products): on these three prompts the
logits of a batched row differ from the prompt alone by up to ~5e-5, while the smallest gap between the first
and second choice over the 24 steps is 0.007, so the greedy tokens agree.
"""

import json
import subprocess
import sys

import pytest
import torch

from benchmark import DEMO_DIR, DEMO_GGUF, first_difference, hf_generate_batch, load_scratch_model, load_tokenizer
from notebook_code import load_notebook_functions
from notebook_runner import REPO

TEXTS = ["The capital of France is", "Once upon a time, there was a", "Water boils at a temperature of"]
N_NEW = 24


@pytest.fixture(scope="module")
def demo():
    subprocess.run([sys.executable, "scripts/prepare_demo_model.py"], cwd=REPO, check=True)
    from transformers import AutoModelForCausalLM
    tokenizer = load_tokenizer({}, DEMO_DIR)  # the demo's tokenizer_config.json: no notebook function needed
    hf = AutoModelForCausalLM.from_pretrained(DEMO_GGUF.parent, gguf_file=DEMO_GGUF.name, dtype=torch.float32).eval()
    stop_tokens = json.loads((DEMO_DIR / "tokenizer_config.json").read_text())["stop_tokens"]
    return {"hf": hf, "prompts": [tokenizer.encode(t) for t in TEXTS], "stop_tokens": stop_tokens,
            "pad_id": stop_tokens[0]}


def hf_alone(hf, prompt, n, stop_tokens=()):
    """transformers' generate on one prompt, no padding: the rows a batch must reproduce."""
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                          eos_token_id=list(stop_tokens) or None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.fixture(scope="module")
def batched(demo):
    return hf_generate_batch(demo["hf"], demo["prompts"], N_NEW, demo["pad_id"], ())


def test_the_prompts_have_different_lengths(demo):
    assert [len(p) for p in demo["prompts"]] == [5, 8, 6]  # so rows 0 and 2 are left-padded by 3 and 2


def test_each_batched_row_equals_the_prompt_alone(demo, batched):
    alone = [hf_alone(demo["hf"], p, N_NEW) for p in demo["prompts"]]
    differences = [first_difference(a, b) for a, b in zip(batched, alone)]
    assert differences == [None, None, None], [
        (i, d, batched[i][d:d + 3], alone[i][d:d + 3]) for i, d in enumerate(differences) if d is not None]
    assert all(len(row) == N_NEW for row in batched)


def test_each_batched_row_equals_the_notebooks_generate_alone(demo, batched):
    nb = load_notebook_functions()
    model = load_scratch_model(nb, DEMO_DIR)
    assert batched == [nb["generate"](model, p, N_NEW, stop_tokens=()) for p in demo["prompts"]]


def test_a_row_is_cut_after_its_stop_token_while_the_others_go_on(demo, batched):
    # A token that one row generates (not first, not last) and no other row generates at all.
    row, stop = next((r, t) for r in range(len(batched)) for t in batched[r][2:-1]
                     if not any(t in other for i, other in enumerate(batched) if i != r))
    stopped = hf_generate_batch(demo["hf"], demo["prompts"], N_NEW, demo["pad_id"], [stop])
    assert stopped[row] == batched[row][:batched[row].index(stop) + 1]  # the stop token kept, no padding after it
    assert [r for i, r in enumerate(stopped) if i != row] == [r for i, r in enumerate(batched) if i != row]
    assert stopped[row] == hf_alone(demo["hf"], demo["prompts"][row], N_NEW, [stop])


def test_the_demo_models_own_stop_tokens_end_no_row_early_here(demo, batched):
    assert hf_generate_batch(demo["hf"], demo["prompts"], N_NEW, demo["pad_id"], demo["stop_tokens"]) == batched


@pytest.mark.parametrize("plain", [True, False], ids=["lesson-functions", "fast-path"])
def test_the_notebooks_generate_batch_equals_transformers_batched_generate(plain, demo, batched):
    # The notebook's own batch (section 18), with the lesson's functions and with section 19's fast path, on
    # the real weights: the rows of transformers' left-padded batched generate, with and without stop tokens.
    nb = load_notebook_functions()
    model = load_scratch_model(nb, DEMO_DIR, plain=plain)
    assert nb["generate_batch"](model, demo["prompts"], N_NEW) == batched
    chat = [nb["chatml_tokens"](load_tokenizer({}, DEMO_DIR), [{"role": "user", "content": t}], nb["SMOLLM2_SYSTEM"])
            for t in ("What is the capital of France?", "Name one color.")]
    ours = nb["generate_batch"](model, chat, N_NEW, demo["stop_tokens"])
    assert ours == hf_generate_batch(demo["hf"], chat, N_NEW, demo["pad_id"], demo["stop_tokens"])
    assert any(row[-1] in demo["stop_tokens"] for row in ours)  # a chat answer ends on its own
