"""The whole notebook, executed top to bottom on tiny random Meta-format checkpoints, against Meta's reference."""

import json

import pytest
import torch
from papermill.exceptions import PapermillExecutionError

from meta_reference import load_meta_transformer, meta_logits
from notebook_runner import run_notebook

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

    reference = meta_logits(load_meta_transformer(ckpt, max_seq_len=len(tokens)), tokens)[-1]
    ours = saved["next_token_logits"]
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
    assert int(ours.argmax()) == int(reference.argmax())


def test_tied_output_uses_the_embedding(tiny_checkpoint_factory, meta_parallel, tmp_path):
    ckpt = tiny_checkpoint_factory("mha", tied=True)
    saved = run_notebook(tmp_path, MODEL_DIR=str(ckpt))
    assert saved["tied"]
    reference = meta_logits(load_meta_transformer(ckpt, max_seq_len=saved["T"]), saved["prompt_tokens"])[-1]
    torch.testing.assert_close(saved["next_token_logits"], reference, atol=1e-4, rtol=0)


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
