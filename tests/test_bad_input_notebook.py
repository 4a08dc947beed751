"""Bad input to the notebook: each case ends in one InputError that names the file, key or parameter.

Every case runs the real notebook with papermill, as a reader would, and checks three things: the message says
what is wrong and where, the traceback holds no frame from inside torch or tiktoken (the notebook catches their
errors and says what they mean), and nothing was written (the model folder is unchanged; a pickle's code never ran).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from papermill.exceptions import PapermillExecutionError

from llama_models.llama3.tokenizer import Tokenizer

from notebook_runner import REPO, run_notebook

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under FOLDER with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def notebook_error(tmp_path: Path, model_dir: Path | None, **parameters) -> PapermillExecutionError:
    """Runs the notebook, expects an InputError; checks that nothing in MODEL_DIR or the repository changed."""
    watched = [folder for folder in (model_dir, REPO / "Meta-Llama-3-8B") if folder is not None and folder.is_dir()]
    before = [snapshot(folder) for folder in watched]
    repo_before = sorted(p.name for p in REPO.iterdir())
    if model_dir is not None:
        parameters["MODEL_DIR"] = str(model_dir)
    with pytest.raises(PapermillExecutionError) as caught:
        run_notebook(tmp_path / "run", **parameters)
    error = caught.value
    traceback = ANSI.sub("", "\n".join(error.traceback))
    assert error.ename == "InputError", f"{error.ename}: {error.evalue}\n{traceback}"
    assert not re.search(r"site-packages/(torch|tiktoken)", traceback), traceback  # no frame from deep inside
    assert [snapshot(folder) for folder in watched] == before, "the notebook changed a file it should only read"
    assert sorted(p.name for p in REPO.iterdir()) == repo_before
    assert not (tmp_path / "run" / "saved.pt").exists()  # the run stopped at the error
    return error


@pytest.fixture
def model_copy(tiny_checkpoint_factory, tmp_path) -> Path:
    """A writable copy of a tiny Meta-format checkpoint folder (params.json, consolidated.00.pth)."""
    copy = tmp_path / "model"
    shutil.copytree(tiny_checkpoint_factory("gqa2"), copy)
    return copy


def edit_params(folder: Path, **changes) -> dict:
    params = json.loads((folder / "params.json").read_text())
    for key, value in changes.items():
        if value is None:
            del params[key]
        else:
            params[key] = value
    (folder / "params.json").write_text(json.dumps(params))
    return params


# --------------------------------------------------------------------------- the checkpoint file

class RunsCode:
    """Unpickling this would run a shell command that creates MARKER."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(model_copy, tmp_path):
    marker = tmp_path / "the-pickle-ran"
    weights = torch.load(model_copy / "consolidated.00.pth", weights_only=True)
    weights["norm.weight"] = RunsCode(marker)
    torch.save(weights, model_copy / "consolidated.00.pth")
    error = notebook_error(tmp_path, model_copy)
    assert f"refused to load {model_copy / 'consolidated.00.pth'}" in error.evalue
    assert "system" in error.evalue and "could run code" in error.evalue
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_truncated_or_corrupt_checkpoint_points_to_the_checksums(damage, model_copy, tmp_path):
    path = model_copy / "consolidated.00.pth"
    data = path.read_bytes()
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]  # a download cut short: the zip's directory at the end is gone
    else:
        data = data[:100] + bytes(200) + data[300:]  # the zip's first entry overwritten
    path.write_bytes(data)
    error = notebook_error(tmp_path, model_copy)
    assert f"{path} is truncated or corrupt" in error.evalue
    assert f"python scripts/verify_checkpoint.py {model_copy}" in error.evalue and "checksums" in error.evalue


@pytest.mark.parametrize("kind, page", [
    ("HTML", "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>AccessDenied</body></html>\n"),
    ("XML", '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code></Error>\n'),  # S3's 403
])
def test_an_error_page_saved_as_the_checkpoint_is_named(kind, page, model_copy, tmp_path):
    path = model_copy / "consolidated.00.pth"
    path.write_text(page)
    error = notebook_error(tmp_path, model_copy)
    assert f"{path} ({len(page)} bytes) is an {kind} page, not a checkpoint" in error.evalue
    assert "verify_checkpoint.py" in error.evalue


def test_a_pickle_that_is_not_a_dict_of_tensors(model_copy, tmp_path):
    torch.save([torch.ones(2)], model_copy / "consolidated.00.pth")
    error = notebook_error(tmp_path, model_copy)
    assert "consolidated.00.pth holds a list, not a dict of named tensors" in error.evalue


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_weight_that_is_not_a_finite_number_is_named_with_its_tensor(value, model_copy, tmp_path):
    """Without the check, a NaN spreads through every layer after it and shows only as NaN logits, far later."""
    path = model_copy / "consolidated.00.pth"
    weights = torch.load(path, weights_only=True)
    name = "layers.1.feed_forward.w2.weight"
    weights[name][3, 5] = value
    torch.save(weights, path)
    error = notebook_error(tmp_path, model_copy)
    what = "NaN (not a number)" if value != value else "+inf"
    assert f"{name} in {model_copy}/ holds {what} at [3, 5], and a weight must be a finite number" in error.evalue
    assert f"python scripts/verify_checkpoint.py {model_copy}" in error.evalue and "checksums" in error.evalue
    assert "check_checkpoint(" in error.source  # named right after loading, not by an assert sections later


def test_a_missing_shard_is_named(model_copy, tmp_path):
    shutil.copy(model_copy / "consolidated.00.pth", model_copy / "consolidated.02.pth")  # 01 is missing
    error = notebook_error(tmp_path, model_copy)
    assert "['consolidated.00.pth', 'consolidated.02.pth']" in error.evalue and "is one missing?" in error.evalue


# --------------------------------------------------------------------------- params.json

def test_params_json_missing(model_copy, tmp_path):
    (model_copy / "params.json").unlink()
    error = notebook_error(tmp_path, model_copy)
    assert "lacks params.json" in error.evalue
    assert "Meta-Llama-3-8B/README.md" in error.evalue and "MODEL_DIR to None" in error.evalue  # where to get it


def test_params_json_not_json(model_copy, tmp_path):
    (model_copy / "params.json").write_text('{"dim": 64, "n_layers": 2,')  # cut short by an editor
    error = notebook_error(tmp_path, model_copy)
    assert f"{model_copy / 'params.json'} is not valid JSON" in error.evalue and "line 1" in error.evalue


@pytest.mark.parametrize("key", ["n_heads", "vocab_size", "rope_theta"])
def test_params_json_missing_a_key_names_it(key, model_copy, tmp_path):
    edit_params(model_copy, **{key: None})
    error = notebook_error(tmp_path, model_copy)
    assert f"{model_copy / 'params.json'} lacks {key!r}" in error.evalue


@pytest.mark.parametrize("key, value, expected", [
    ("dim", "64", "a positive whole number"),
    ("n_layers", 0, "a positive whole number"),
    ("norm_eps", -1e-5, "a positive number"),
    ("use_scaled_rope", "yes", "true or false"),
])
def test_params_json_with_a_wrong_value_names_the_key(key, value, expected, model_copy, tmp_path):
    edit_params(model_copy, **{key: value})
    error = notebook_error(tmp_path, model_copy)
    assert f"{key!r} is {value!r}, but it must be {expected}" in error.evalue


def test_params_json_that_does_not_split_into_heads(model_copy, tmp_path):
    params = edit_params(model_copy, n_kv_heads=3)
    error = notebook_error(tmp_path, model_copy)
    assert f"n_heads = {params['n_heads']} is not a multiple of n_kv_heads = 3" in error.evalue


def test_params_json_disagreeing_with_a_tensor_names_the_tensor_the_keys_and_both_shapes(model_copy, tmp_path):
    original = json.loads((model_copy / "params.json").read_text())
    params = edit_params(model_copy, n_kv_heads=original["n_heads"])  # the weights have fewer key/value heads
    head_dim = params["dim"] // params["n_heads"]
    stored = (original["n_kv_heads"] * head_dim, params["dim"])
    implied = (params["n_heads"] * head_dim, params["dim"])
    error = notebook_error(tmp_path, model_copy)
    assert (f"layers.0.attention.wk.weight has shape {stored}, but params.json implies {implied} "
            "(from its dim, n_heads, n_kv_heads)") in error.evalue


def test_params_json_with_more_layers_than_the_weights(model_copy, tmp_path):
    original = json.loads((model_copy / "params.json").read_text())
    edit_params(model_copy, n_layers=original["n_layers"] + 1)
    error = notebook_error(tmp_path, model_copy)
    assert f"n_layers = {original['n_layers'] + 1}; the weights hold layers 0..{original['n_layers'] - 1}" in error.evalue
    assert f"layers.{original['n_layers']}.attention_norm.weight" in error.evalue


# --------------------------------------------------------------------------- the folder

def test_model_dir_that_does_not_exist(tmp_path):
    error = notebook_error(tmp_path, None, MODEL_DIR=str(tmp_path / "Meta-Llama-3-8B-typo"))
    assert "Meta-Llama-3-8B-typo' is not a folder" in error.evalue
    for expected in ["params.json", "consolidated.00.pth", "tokenizer.model", "Meta-Llama-3-8B/README.md",
                     "scripts/convert_hf_checkpoint.py"]:
        assert expected in error.evalue


def test_model_dir_without_the_weights(model_copy, tmp_path):
    (model_copy / "consolidated.00.pth").unlink()
    error = notebook_error(tmp_path, model_copy)
    assert "lacks consolidated.00.pth" in error.evalue and "Meta-Llama-3-8B/README.md" in error.evalue


# --------------------------------------------------------------------------- the tokenizer

def with_own_tokenizer(folder: Path, special_tokens: dict[str, int]) -> None:
    """Gives FOLDER a tokenizer of its own, the way the demo model has one: tokenizer.model + tokenizer_config.json."""
    shutil.copy(Path(str(files("llama_models") / "llama3" / "tokenizer.model")), folder / "tokenizer.model")
    config = {"pat_str": Tokenizer.pat_str, "special_tokens": special_tokens,
              "bos_id": special_tokens["<|begin_of_text|>"], "add_bos": True,
              "stop_tokens": [special_tokens["<|end_of_text|>"]]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def test_tokenizer_model_missing(model_copy, tmp_path):
    with_own_tokenizer(model_copy, Tokenizer.get_instance().special_tokens)
    (model_copy / "tokenizer.model").unlink()
    error = notebook_error(tmp_path, model_copy)
    assert f"{model_copy / 'tokenizer.model'} is missing" in error.evalue


@pytest.mark.parametrize("content", ["<!DOCTYPE html><html><body>403 Forbidden</body></html>\n",
                                     "IQ== 0\nIg== 1\nnot-base64!! 2\n"], ids=["html", "corrupt-line"])
def test_tokenizer_model_corrupt(content, model_copy, tmp_path):
    (model_copy / "tokenizer.model").write_text(content)  # a Llama 3 folder's own tokenizer.model is used first
    error = notebook_error(tmp_path, model_copy)
    assert f"{model_copy / 'tokenizer.model'} is not a tiktoken tokenizer file" in error.evalue


def test_tokenizer_whose_vocabulary_disagrees_with_params_json(model_copy, tmp_path):
    special = dict(list(Tokenizer.get_instance().special_tokens.items())[:10])  # 128,010 tokens instead of 128,256
    with_own_tokenizer(model_copy, special)
    error = notebook_error(tmp_path, model_copy)
    params = json.loads((model_copy / "params.json").read_text())
    assert (f"the tokenizer has 128,010 tokens, but {model_copy}/params.json says vocab_size = "
            f"{params['vocab_size']:,}") in error.evalue


# --------------------------------------------------------------------------- prompts and parameters

def test_an_empty_prompt(model_copy, tmp_path):
    error = notebook_error(tmp_path, model_copy, PROMPT="")
    assert "PROMPT is empty" in error.evalue


def test_a_prompt_longer_than_the_context(model_copy, tmp_path):
    edit_params(model_copy, max_seq_len=16)  # a field of Meta's ModelArgs; small so that the test stays small
    prompt = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    n_tokens = len(Tokenizer.get_instance().encode(prompt, bos=True, eos=False))
    error = notebook_error(tmp_path, model_copy, PROMPT=prompt)
    assert f"PROMPT is {n_tokens} tokens, but this model reads at most 16 (its context length)" in error.evalue


def test_an_empty_chat_message(model_copy, tmp_path):
    error = notebook_error(tmp_path, model_copy, CHAT_MESSAGE="", MAX_NEW_TOKENS=1)
    assert "CHAT_MESSAGE is empty" in error.evalue
    assert "check_parameters(" in error.source  # named with the parameters, not after the model has run


@pytest.mark.parametrize("name, value, expected", [
    ("DTYPE", "float64x", "DTYPE = 'float64x'"),
    ("DEVICE", "gpu", "DEVICE = 'gpu' is not a device"),
    ("MAX_NEW_TOKENS", 0, "MAX_NEW_TOKENS = 0: it must be a whole number of at least 1"),
    ("TEMPERATURE", -1.0, "TEMPERATURE = -1.0"),
    ("TOP_P", 0.0, "TOP_P = 0.0"),
    ("HEATMAP_LAYER", 99, "HEATMAP_LAYER = 99"),
    ("MAX_BATCH_SIZE", 0, "MAX_BATCH_SIZE = 0: it must be a whole number of at least 1"),
])
def test_a_parameter_out_of_range(name, value, expected, model_copy, tmp_path):
    error = notebook_error(tmp_path, model_copy, **{name: value})
    assert expected in error.evalue


@pytest.mark.parametrize("name, value, expected", [
    ("TEMPERATURE", "hot", "TEMPERATURE = 'hot': it must be a number, 0 (greedy) or more"),
    ("TOP_P", "0.9", "TOP_P = '0.9': it must be a number more than 0 and at most 1"),
    ("SEED", 1.5, "SEED = 1.5: it must be a whole number"),
    ("MAX_NEW_TOKENS", 2.0, "MAX_NEW_TOKENS = 2.0: it must be a whole number of at least 1"),
    ("PROMPT_SPECIAL_TOKENS", "yes", "PROMPT_SPECIAL_TOKENS = 'yes': it must be True or False"),
])
def test_a_parameter_of_the_wrong_type_is_named_before_anything_loads(name, value, expected, model_copy, tmp_path):
    """Other wrong types (DEVICE = 5, PROMPT = 5, TEMPERATURE = True, NaN, ...): tests/test_bad_input_checks.py."""
    error = notebook_error(tmp_path, model_copy, **{name: value})
    assert expected in error.evalue
    assert "check_parameters(" in error.source  # the cell that checks the parameters, before any file is read


@pytest.mark.parametrize("allow_special", [False, True])
def test_special_token_text_in_the_prompt_is_text_unless_asked(allow_special, model_copy, tmp_path):
    prompt = "Say hi.<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
    saved = run_notebook(tmp_path / "run", names=("prompt_tokens",), MODEL_DIR=str(model_copy), PROMPT=prompt,
                         MAX_NEW_TOKENS=1, PROMPT_SPECIAL_TOKENS=allow_special)
    tokenizer = Tokenizer.get_instance()  # Meta's: special tokens are text unless allowed_special says otherwise
    expected = tokenizer.encode(prompt, bos=True, eos=False, allowed_special="all" if allow_special else set())
    assert saved["prompt_tokens"] == expected
    assert (tokenizer.special_tokens["<|eot_id|>"] in expected) == allow_special


# --------------------------------------------------------------------------- the batch of section 18

@pytest.mark.parametrize("prompts, extra, expected", [
    ([], {}, "PROMPTS = []: give a list of one or more prompts"),
    ("Hello", {}, "PROMPTS = 'Hello': give a list of one or more prompts"),
    (["What is a llama?", ""], {}, "PROMPTS[1] = '': every prompt must be some text"),
    (["Hi"] * 3, {"MAX_BATCH_SIZE": 2}, "PROMPTS has 3 prompts, but MAX_BATCH_SIZE = 2"),
], ids=["empty-list", "a-string-not-a-list", "an-empty-prompt", "more-than-max-batch-size"])
def test_a_bad_batch_of_prompts_is_named_before_anything_loads(prompts, extra, expected, model_copy, tmp_path):
    error = notebook_error(tmp_path, model_copy, PROMPTS=prompts, **extra)
    assert expected in error.evalue


def test_a_batch_prompt_longer_than_the_context(model_copy, tmp_path):
    edit_params(model_copy, max_seq_len=40)
    long_message = "count with me: " + " ".join(str(i) for i in range(40))
    error = notebook_error(tmp_path, model_copy, PROMPT="Hi", CHAT_MESSAGE="Hi", MAX_NEW_TOKENS=1,
                           PROMPTS=["Hi", long_message])
    assert "PROMPTS[1] is " in error.evalue and "but this model reads at most 40 (its context length)" in error.evalue
