"""The whole notebook, executed top to bottom on tiny random Meta-format checkpoints, against Meta's reference."""

import json

import nbformat
import pytest
import torch
from papermill.exceptions import PapermillExecutionError

from llama_models.datatypes import RawMessage
from llama_models.llama3.chat_format import ChatFormat
from llama_models.llama3.tokenizer import Tokenizer

from meta_reference import load_meta_transformer, meta_generate, meta_greedy, meta_logits
from notebook_runner import run_notebook
from test_notebook_diagrams import assert_pictures_show_the_run

LONG_PROMPT = ("Once upon a time, in a valley between two rivers, there lived a llama who counted everything: "
               "the stones on the path, the clouds over the hills, and the 1,024 steps to the well. One morning")


@pytest.mark.parametrize("config", ["gqa2", "gqa4"])
@pytest.mark.parametrize("prompt", [None, LONG_PROMPT], ids=["default-prompt", "long-prompt"])
def test_next_token_logits_equal_meta_reference(config, prompt, tiny_checkpoint_factory, meta_parallel, tmp_path):
    ckpt = tiny_checkpoint_factory(config)  # bf16 on disk, like Meta's files
    saved = run_notebook(tmp_path, MODEL_DIR=str(ckpt), PROMPT=prompt)
    tokens = saved["prompt_tokens"]
    assert tokens[0] == 128000 and len(tokens) == saved["T"]
    assert (len(tokens) > 30) == (prompt is not None)

    model = load_meta_transformer(ckpt, max_seq_len=len(tokens) + len(saved["generated_tokens"]))
    reference = meta_logits(model, tokens)[-1]
    ours = saved["next_token_logits"]
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
    assert int(ours.argmax()) == int(reference.argmax())

    # Every picture of the lesson shows this checkpoint's sizes, and none of the demo model's.
    assert_pictures_show_the_run(nbformat.read(tmp_path / "output.ipynb", as_version=4),
                                 json.loads((ckpt / "params.json").read_text()), saved["T"],
                                 len(saved["chat_tokens"]))

    # Generation (greedy by default): the KV-cache loop, the loop without a cache and generate() all give
    # the tokens of Meta's own cached greedy decoding.
    generated = saved["generated_tokens"]
    assert len(generated) == 24 or generated[-1] in saved["stop_tokens"]
    assert generated == saved["cached_tokens"] == saved["no_cache_tokens"]
    assert generated == meta_greedy(model, tokens, len(generated), saved["stop_tokens"])

    # Chat: the dialog tokens equal Meta's ChatFormat for the default user message.
    expected_chat = ChatFormat(Tokenizer.get_instance()).encode_dialog_prompt(
        [RawMessage(role="user", content="What is the capital of France?")]).tokens
    assert saved["chat_tokens"] == expected_chat

    # The batch of section 18: each prompt in Meta's ChatFormat, and the rows of Meta's own batched generate.
    batch = saved["batch_prompt_tokens"]
    assert len(saved["prompts"]) == len(batch) == 3 and len({len(p) for p in batch}) == 3  # three lengths
    assert batch == [ChatFormat(Tokenizer.get_instance()).encode_dialog_prompt(
        [RawMessage(role="user", content=p)]).tokens for p in saved["prompts"]]
    reference = load_meta_transformer(ckpt, max_seq_len=max(map(len, batch)) + 24, max_batch_size=len(batch))
    assert saved["batch_generated_tokens"] == meta_generate(reference, batch, 24, saved["stop_tokens"])


def test_tied_output_uses_the_embedding(tiny_checkpoint_factory, meta_parallel, tmp_path):
    ckpt = tiny_checkpoint_factory("mha", tied=True)
    saved = run_notebook(tmp_path, MODEL_DIR=str(ckpt), MAX_NEW_TOKENS=2)
    assert saved["tied"]
    reference = meta_logits(load_meta_transformer(ckpt, max_seq_len=saved["T"]), saved["prompt_tokens"])[-1]
    torch.testing.assert_close(saved["next_token_logits"], reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("shards", [2, 4])
def test_model_parallel_shards_are_merged(shards, tiny_checkpoint_factory, meta_parallel, tmp_path):
    # The same weights as one file and as several consolidated.NN.pth, split like Meta's 70B.
    whole = tiny_checkpoint_factory("gqa4")
    sharded = tiny_checkpoint_factory("gqa4", shards=shards)
    assert len(list(sharded.glob("consolidated.*.pth"))) == shards
    saved = run_notebook(tmp_path, MODEL_DIR=str(sharded), MAX_NEW_TOKENS=2)
    reference = meta_logits(load_meta_transformer(whole, max_seq_len=saved["T"]), saved["prompt_tokens"])[-1]
    torch.testing.assert_close(saved["next_token_logits"], reference, atol=1e-4, rtol=0)


def test_scaled_rope_of_llama31(tiny_checkpoint_factory, meta_parallel, tmp_path):
    scaled = tiny_checkpoint_factory("gqa2", use_scaled_rope=True)
    plain = tiny_checkpoint_factory("gqa2")  # the same weights, without "use_scaled_rope"
    saved = run_notebook(tmp_path, MODEL_DIR=str(scaled), PROMPT=LONG_PROMPT, MAX_NEW_TOKENS=2)
    tokens = saved["prompt_tokens"]
    reference = meta_logits(load_meta_transformer(scaled, max_seq_len=len(tokens)), tokens)[-1]
    unscaled = meta_logits(load_meta_transformer(plain, max_seq_len=len(tokens)), tokens)[-1]
    assert (reference - unscaled).abs().max() > 1e-2, "the prompt is too short for scaling to matter"
    torch.testing.assert_close(saved["next_token_logits"], reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("rope_factor", [None, 32.0], ids=["llama3", "llama3.2-rope-factor-32"])
def test_hugging_face_files_converted_for_the_notebook(rope_factor, tiny_checkpoint_factory, tmp_path):
    # Hugging Face's layout (q/k rows permuted, safetensors, config.json) made from Meta-layout weights, then
    # scripts/convert_hf_checkpoint.py, then the notebook: its logits equal transformers' on the HF files.
    import subprocess
    import sys

    from transformers import LlamaForCausalLM

    from meta_reference import hf_logits, meta_to_hf_model
    from notebook_runner import REPO

    meta_dir = tiny_checkpoint_factory("gqa2", tied=True, use_scaled_rope=rope_factor is not None)
    hf_model = meta_to_hf_model(meta_dir, dtype=torch.bfloat16, max_position_embeddings=131072)
    if rope_factor is not None:
        hf_model.config.rope_parameters["factor"] = rope_factor
    hf_dir, converted = tmp_path / "hf", tmp_path / "converted"
    hf_model.save_pretrained(hf_dir)
    subprocess.run([sys.executable, "scripts/convert_hf_checkpoint.py", str(hf_dir), str(converted),
                    "--tokenizer", str(meta_dir / "tokenizer.model")], cwd=REPO, check=True, capture_output=True)

    saved = run_notebook(tmp_path / "run", MODEL_DIR=str(converted), PROMPT=LONG_PROMPT, MAX_NEW_TOKENS=2)
    reference = LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    expected = hf_logits(reference, saved["prompt_tokens"])[-1]
    torch.testing.assert_close(saved["next_token_logits"], expected, atol=1e-4, rtol=0)


def test_a_folder_without_the_files_is_a_clear_error(tmp_path):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "params.json").write_text("{}")
    with pytest.raises(PapermillExecutionError, match="lacks consolidated.00.pth"):
        run_notebook(tmp_path / "run", MODEL_DIR=str(empty))


def test_a_wrong_shape_names_the_tensor_and_both_shapes(tiny_checkpoint_factory, tmp_path):
    ckpt = tiny_checkpoint_factory("gqa2")
    broken = tmp_path / "broken"
    broken.mkdir()
    weights = torch.load(ckpt / "consolidated.00.pth", weights_only=True)
    weights["layers.1.attention.wk.weight"] = weights["layers.1.attention.wk.weight"][:-1]
    torch.save(weights, broken / "consolidated.00.pth")
    (broken / "params.json").write_text((ckpt / "params.json").read_text())
    params = json.loads((ckpt / "params.json").read_text())
    rows = params["n_kv_heads"] * params["dim"] // params["n_heads"]
    with pytest.raises(PapermillExecutionError,
                       match=rf"layers\.1\.attention\.wk\.weight has shape \({rows - 1}, {params['dim']}\), "
                             rf"but params\.json implies \({rows}, {params['dim']}\)"):
        run_notebook(tmp_path / "run", MODEL_DIR=str(broken))
