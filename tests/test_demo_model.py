"""The notebook on the demo model (SmolLM2-135M-Instruct, real trained weights) against Hugging Face transformers."""

import subprocess
import sys

import pytest
import torch

from notebook_runner import REPO, run_notebook

DEMO_DIR = REPO / "models" / "SmolLM2-135M-Instruct"
CACHE_DIR = REPO / "models" / ".cache"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    # The notebook prepares the demo model itself when it is missing; prepare it first here so that a failure
    # of the preparation is reported as such.
    subprocess.run([sys.executable, "scripts/prepare_demo_model.py"], cwd=REPO, check=True)
    return run_notebook(tmp_path_factory.mktemp("demo"))  # MODEL_DIR = None: the demo model, as a reader runs it


@pytest.fixture(scope="module")
def hf_model():
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(CACHE_DIR, gguf_file=GGUF_NAME, dtype=torch.float32)
    return model.eval()


def test_the_demo_model_says_paris(demo_run):
    assert demo_run["tied"]  # SmolLM2 has no output.weight: the notebook used the embedding
    import tiktoken  # the notebook's prediction, decoded independently of the notebook's own tokenizer object
    from tiktoken.load import load_tiktoken_bpe
    import json
    config = json.loads((DEMO_DIR / "tokenizer_config.json").read_text())
    encoding = tiktoken.Encoding("demo", pat_str=config["pat_str"], special_tokens=config["special_tokens"],
                                 mergeable_ranks=load_tiktoken_bpe(str(DEMO_DIR / "tokenizer.model")))
    assert encoding.decode([int(demo_run["next_token_logits"].argmax())]) == " Paris"


def test_prompt_tokens_equal_hugging_face(demo_run):
    from transformers import AutoTokenizer
    hf_tokenizer = AutoTokenizer.from_pretrained(CACHE_DIR, gguf_file=GGUF_NAME)
    assert demo_run["prompt_tokens"] == hf_tokenizer.encode("The capital of France is", add_special_tokens=False)


def test_logits_equal_hugging_face(demo_run, hf_model):
    tokens = demo_run["prompt_tokens"]
    with torch.inference_mode():
        expected = hf_model(torch.tensor([tokens])).logits[0, -1].float()
    ours = demo_run["next_token_logits"]
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, atol=1e-3, rtol=0)
    assert torch.equal(ours.topk(5).indices, expected.topk(5).indices)


def test_greedy_generation_equals_hugging_face_generate(demo_run, hf_model):
    # The notebook's generate() with its KV cache, greedy (TEMPERATURE = 0, the default), 24 new tokens.
    ours = demo_run["generated_tokens"]
    assert len(ours) >= 24
    ids = torch.tensor([demo_run["prompt_tokens"]])
    with torch.inference_mode():
        expected = hf_model.generate(ids, max_new_tokens=len(ours), do_sample=False,
                                     eos_token_id=demo_run["stop_tokens"], pad_token_id=demo_run["stop_tokens"][0])
    assert ours == expected[0, ids.shape[1]:].tolist()


def test_chat_uses_smollm2s_own_template_and_answers_like_hugging_face(demo_run, hf_model):
    from transformers import AutoTokenizer
    hf_tokenizer = AutoTokenizer.from_pretrained(CACHE_DIR, gguf_file=GGUF_NAME)
    expected = hf_tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                                add_generation_prompt=True, tokenize=True)
    if isinstance(expected, dict) or hasattr(expected, "input_ids"):
        expected = expected["input_ids"]
    assert demo_run["chat_tokens"] == list(expected)

    ids = torch.tensor([demo_run["chat_tokens"]])
    answer = demo_run["answer"]
    with torch.inference_mode():
        hf_answer = hf_model.generate(ids, max_new_tokens=len(answer), do_sample=False,
                                      eos_token_id=demo_run["stop_tokens"], pad_token_id=demo_run["stop_tokens"][0])
    assert answer == hf_answer[0, ids.shape[1]:].tolist()
    assert answer[-1] in demo_run["stop_tokens"]  # it finished its answer
