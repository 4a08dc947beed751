"""llama3_files' checks called directly, without papermill: every wrong type of every notebook parameter, the
check of a checkpoint's values (NaN, ±inf) in detail, and an int8 checkpoint's quantization and scales.

tests/test_bad_input_notebook.py runs a few of these cases through the real notebook (TEMPERATURE = "hot",
TOP_P = "0.9", SEED = 1.5, MAX_NEW_TOKENS = 2.0, PROMPT_SPECIAL_TOKENS = "yes", a NaN and a +inf weight);
each run there costs ~10 s, each case here a millisecond.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

import llama3_files
from llama3_files import (InputError, Int8Checkpoint, ShardedCheckpoint, check_checkpoint, check_heatmap_layer,
                          check_parameters, check_prompts, check_text_parameters, check_values, find_model_dir,
                          merge_shards, read_params)
from quantize_checkpoint import quantize_rows

GOOD = {"device": "cpu", "dtype": None, "max_new_tokens": 24, "temperature": 0.0, "top_p": 0.9, "seed": 0}


# --------------------------------------------------------------------------- the parameters

@pytest.mark.parametrize("name, value, expected", [
    ("device", 5, "DEVICE = 5: use None, 'cpu', 'cuda' or 'mps'"),
    ("device", 0.0, "DEVICE = 0.0: use None"),
    ("device", ["cpu"], "DEVICE = ['cpu']: use None"),
    ("device", "", "DEVICE = '' is not a device"),
    ("dtype", 32, "DTYPE = 32: use None, 'float32', 'bfloat16' or 'float16'"),
    ("dtype", ["float32"], "DTYPE = ['float32']: use None"),
    ("max_new_tokens", True, "MAX_NEW_TOKENS = True: it must be a whole number of at least 1"),
    ("max_new_tokens", "24", "MAX_NEW_TOKENS = '24': it must be a whole number"),
    ("max_new_tokens", None, "MAX_NEW_TOKENS = None: it must be a whole number"),
    ("temperature", True, "TEMPERATURE = True: it must be a number, 0 (greedy) or more"),
    ("temperature", math.nan, "TEMPERATURE = nan: it must be a number"),
    ("temperature", None, "TEMPERATURE = None: it must be a number"),
    ("temperature", "0.6", "TEMPERATURE = '0.6': it must be a number"),
    ("temperature", 1j, "TEMPERATURE = 1j: it must be a number"),
    ("top_p", True, "TOP_P = True: it must be a number more than 0 and at most 1"),
    ("top_p", math.nan, "TOP_P = nan: it must be a number"),
    ("top_p", None, "TOP_P = None: it must be a number"),
    ("top_p", 1.5, "TOP_P = 1.5: it must be a number more than 0 and at most 1"),
    ("compile_step", "yes", "COMPILE = 'yes': it must be True or False"),
    ("compile_step", 1, "COMPILE = 1: it must be True or False"),
    ("compile_step", None, "COMPILE = None: it must be True or False"),
    ("seed", True, "SEED = True: it must be a whole number"),
    ("seed", "0", "SEED = '0': it must be a whole number"),
    ("seed", None, "SEED = None: it must be a whole number"),
    ("seed", 2**64, "SEED = 18446744073709551616: it must be a whole number, e.g. 0 (torch.Generator().manual_seed "
                    "takes -2**63 to 2**64 - 1)"),
    ("seed", -2**63 - 1, "SEED = -9223372036854775809: it must be a whole number"),
])
def test_check_parameters_names_a_wrong_type_or_value(name, value, expected):
    with pytest.raises(InputError) as caught:
        check_parameters(**(GOOD | {name: value}))
    assert expected in str(caught.value)


@pytest.mark.parametrize("name, value", [
    ("max_new_tokens", 1), ("temperature", 1), ("temperature", 0.6), ("temperature", math.inf), ("top_p", 1),
    ("seed", -1), ("seed", 2**64 - 1), ("seed", -2**63),
    ("device", torch.device("cpu")), ("dtype", "bfloat16"), ("compile_step", True),
])
def test_check_parameters_accepts_every_good_kind(name, value):
    assert check_parameters(**(GOOD | {name: value})) == torch.device("cpu")
    if name == "seed":
        torch.Generator().manual_seed(value)  # what the notebook does with it


def test_compile_on_the_cpu_needs_a_cpp_compiler(monkeypatch):
    found = {}
    monkeypatch.setattr(llama3_files.shutil, "which", lambda name: found.get(name))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(InputError, match=r"COMPILE = True: .* needs a C\+\+ compiler, and none was found"):
        check_parameters(**(GOOD | {"compile_step": True}))
    assert check_parameters(**GOOD) == torch.device("cpu")  # COMPILE = False needs none
    monkeypatch.setenv("CXX", "my-g++")
    with pytest.raises(InputError, match="apt install g"):  # a CXX that names no program is no compiler
        check_parameters(**(GOOD | {"compile_step": True}))
    found["my-g++"] = "/opt/bin/my-g++"
    assert llama3_files.cpp_compiler() == "/opt/bin/my-g++"
    monkeypatch.delenv("CXX")
    found.clear()
    found["clang++"] = "/usr/bin/clang++"  # any one of them will do
    assert check_parameters(**(GOOD | {"compile_step": True})) == torch.device("cpu")


def test_check_parameters_keeps_the_notebooks_call_of_five_arguments():
    assert check_parameters("cpu", None, 24, 0.0, 0.9) == torch.device("cpu")  # SEED is optional


@pytest.mark.parametrize("prompt, special, chat, expected", [
    (5, False, "Hi", "PROMPT = 5: it must be some text in quotes, or None"),
    (["Hi"], False, "Hi", "PROMPT = ['Hi']: it must be some text"),
    ("", False, "Hi", "PROMPT is empty"),
    (None, "yes", "Hi", "PROMPT_SPECIAL_TOKENS = 'yes': it must be True or False"),
    (None, 1, "Hi", "PROMPT_SPECIAL_TOKENS = 1: it must be True or False"),
    (None, None, "Hi", "PROMPT_SPECIAL_TOKENS = None: it must be True or False"),
    (None, False, None, "CHAT_MESSAGE = None: it must be some text in quotes"),
    (None, False, ["Hi"], "CHAT_MESSAGE = ['Hi']: it must be some text"),
    (None, False, "", "CHAT_MESSAGE is empty"),
])
def test_check_text_parameters_names_a_wrong_type(prompt, special, chat, expected):
    with pytest.raises(InputError) as caught:
        check_text_parameters(prompt, special, chat)
    assert expected in str(caught.value)


def test_check_text_parameters_accepts_good_ones():
    check_text_parameters(None, False, "What is the capital of France?")
    check_text_parameters("The sky is", True, "Hi")


@pytest.mark.parametrize("layer, expected", [
    ("0", "HEATMAP_LAYER = '0': it must be a whole number, one of this model's layers 0..3"),
    (True, "HEATMAP_LAYER = True: it must be a whole number"),
    (1.0, "HEATMAP_LAYER = 1.0: it must be a whole number"),
    (None, "HEATMAP_LAYER = None: it must be a whole number"),
    (-1, "HEATMAP_LAYER = -1, but this model's layers are 0..3"),
])
def test_check_heatmap_layer_names_a_wrong_type(layer, expected):
    with pytest.raises(InputError) as caught:
        check_heatmap_layer(layer, 4)
    assert expected in str(caught.value)


@pytest.mark.parametrize("prompts, max_batch_size, expected", [
    (None, 2.0, "MAX_BATCH_SIZE = 2.0: it must be a whole number of at least 1"),
    (None, True, "MAX_BATCH_SIZE = True: it must be a whole number"),
    (None, "8", "MAX_BATCH_SIZE = '8': it must be a whole number"),
    ({"Hi"}, 8, "PROMPTS = {'Hi'}: give a list of one or more prompts"),
    (["Hi", 5], 8, "PROMPTS[1] = 5: every prompt must be some text"),
    ([None], 8, "PROMPTS[0] = None: every prompt must be some text"),
])
def test_check_prompts_names_a_wrong_type(prompts, max_batch_size, expected):
    with pytest.raises(InputError) as caught:
        check_prompts(prompts, max_batch_size)
    assert expected in str(caught.value)


@pytest.mark.parametrize("model_dir", [5, b"Meta-Llama-3-8B", ["Meta-Llama-3-8B"], True])
def test_find_model_dir_names_a_wrong_type(model_dir):
    with pytest.raises(InputError) as caught:
        find_model_dir(model_dir)
    assert f"MODEL_DIR = {model_dir!r}: it must be a folder's path in quotes" in str(caught.value)


# --------------------------------------------------------------------------- the checkpoint's values

def damaged(value: float, dtype: torch.dtype = torch.bfloat16, at=(70, 5)) -> dict[str, torch.Tensor]:
    weights = {"norm.weight": torch.ones(8, dtype=dtype), "layers.3.feed_forward.w2.weight": torch.zeros(100, 8, dtype=dtype)}
    weights["layers.3.feed_forward.w2.weight"][at] = value
    return weights


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("value, what", [(math.nan, "NaN (not a number)"), (math.inf, "+inf"), (-math.inf, "-inf")])
def test_check_values_names_the_tensor_the_value_and_where(value, what, dtype):
    with pytest.raises(InputError) as caught:
        check_values(damaged(value, dtype), "models/x/", block_bytes=64)  # the bad value is in the 5th block
    assert str(caught.value) == (
        f"layers.3.feed_forward.w2.weight in models/x/ holds {what} at [70, 5], and a weight must be a finite number: "
        "the file is damaged (or was saved from a training run that diverged). Download it again, then compare "
        "every file with Meta's checksums: python scripts/verify_checkpoint.py models/x")


def test_check_values_names_the_folder_when_given_a_file_and_handles_a_0d_tensor():
    with pytest.raises(InputError) as caught:
        check_values({"scale": torch.tensor(math.nan)}, "models/x/consolidated.00.pth")
    assert str(caught.value).startswith("scale in models/x/consolidated.00.pth holds NaN (not a number), and")
    assert str(caught.value).endswith("python scripts/verify_checkpoint.py models/x")


def test_check_values_passes_finite_weights_even_when_their_sum_overflows():
    check_values({"w": torch.full((1000, 100), 60000.0, dtype=torch.float16)}, "x")  # the fp16 sum is inf


def test_check_values_reads_in_blocks_of_rows_never_a_whole_big_tensor(monkeypatch):
    """torch.isfinite makes a bool tensor as big as its input: it, and the sum, only ever see one block."""
    seen = []
    real_sum, real_isfinite = torch.Tensor.sum, torch.isfinite

    def sum_(self, *args, **kwargs):
        seen.append(self.numel())
        return real_sum(self, *args, **kwargs)

    def isfinite(tensor):
        seen.append(tensor.numel())
        return real_isfinite(tensor)

    monkeypatch.setattr(torch.Tensor, "sum", sum_)
    monkeypatch.setattr(torch, "isfinite", isfinite)
    weights = damaged(math.nan)
    with pytest.raises(InputError):
        check_values(weights, "x", block_bytes=10 * 8 * 2)  # 10 rows of 8 bf16 values
    assert seen and max(seen) == 10 * 8


def test_check_values_leaves_a_memory_mapped_file_and_its_tensors_unchanged(tmp_path):
    path = tmp_path / "consolidated.00.pth"
    torch.save(damaged(math.inf, at=(99, 7)), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mapped = torch.load(path, weights_only=True, mmap=True)
    before = {name: tensor.clone() for name, tensor in mapped.items()}
    with pytest.raises(InputError, match=r"holds \+inf at \[99, 7\]"):
        check_values(mapped, str(path), block_bytes=64)
    assert all(torch.equal(mapped[name], before[name]) for name in before)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_check_values_of_a_sharded_checkpoint_names_the_file_and_merges_nothing(monkeypatch):
    shards = [damaged(0.0), damaged(math.nan, at=(2, 1))]
    monkeypatch.setattr(torch, "cat", lambda *args, **kwargs: pytest.fail("merged a tensor to check it"))
    with pytest.raises(InputError) as caught:
        check_values(ShardedCheckpoint(shards), "models/70b/")
    assert str(caught.value).startswith("layers.3.feed_forward.w2.weight (its slice in consolidated.01.pth, file 2 "
                                        "of 2) in models/70b/ holds NaN (not a number) at [2, 1]")


def test_check_values_of_some_names_only():
    weights = damaged(math.nan)
    check_values(weights, "x", names=["norm.weight"])  # what truncate_checkpoint keeps
    with pytest.raises(InputError):
        check_values(weights, "x", names=["norm.weight", "layers.3.feed_forward.w2.weight"])


def test_check_checkpoint_checks_the_values_unless_told_not_to(tiny_checkpoint_factory):
    folder = tiny_checkpoint_factory("gqa2")
    cfg = llama3_files.Config.from_params(llama3_files.read_params(folder))
    weights = torch.load(folder / "consolidated.00.pth", weights_only=True)
    check_checkpoint(weights, cfg, str(folder))
    weights["output.weight"] = weights["output.weight"].clone()
    weights["output.weight"][-1, -1] = math.nan
    check_checkpoint(weights, cfg, str(folder), values=False)
    with pytest.raises(InputError, match=r"^output.weight in .* holds NaN \(not a number\) at \[128255, 63\]"):
        check_checkpoint(weights, cfg, str(folder))


def test_a_big_checkpoint_shows_a_progress_bar(monkeypatch, capsys):
    monkeypatch.setattr(llama3_files, "VALUES_PROGRESS_BYTES", 100)
    check_values(damaged(0.0), "x")
    assert "checking the weights' values" in capsys.readouterr().err
    monkeypatch.setattr(llama3_files, "VALUES_PROGRESS_BYTES", 2**30)
    check_values(damaged(0.0), "x")
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- int8 checkpoints

WQ = "layers.0.attention.wq.weight"


@pytest.mark.parametrize("value", ["int4", "INT8", 8, True, None, ["int8"]])
def test_read_params_names_a_quantization_other_than_int8(value, tiny_checkpoint_factory, tmp_path):
    params = json.loads((tiny_checkpoint_factory("gqa2") / "params.json").read_text())
    (tmp_path / "params.json").write_text(json.dumps({**params, "quantization": value}))
    with pytest.raises(InputError) as caught:
        read_params(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'params.json'}: 'quantization' is {value!r}, but the only "
                                        'quantizations this notebook reads are "int8" and "int8-packed"')


@pytest.fixture(scope="module")
def int8_model(tiny_checkpoint_factory):
    """(params, stored dict) of gqa2 in the int8 format, made in memory with the converter's quantize_rows."""
    folder = tiny_checkpoint_factory("gqa2")
    params = read_params(folder) | {"quantization": "int8"}
    state = {}
    for name, tensor in torch.load(folder / "consolidated.00.pth", weights_only=True).items():
        if llama3_files.is_int8_matrix(name):
            state[name], state[name + "_scale"] = quantize_rows(tensor)
        else:
            state[name] = tensor
    return params, state


def check_int8(params: dict, state: dict, values: bool = True) -> None:
    cfg = llama3_files.Config.from_params(params)
    check_checkpoint(merge_shards([state], [Path("models/q/consolidated.00.pth")]), cfg, "models/q/", values=values)


def test_the_int8_model_of_these_tests_passes(int8_model):
    """The good case, so that the refusals below are refusals of the one thing that is wrong."""
    params, state = int8_model
    assert isinstance(merge_shards([state], [Path("x")]), Int8Checkpoint)
    check_int8(params, state)
    check_checkpoint(state, llama3_files.Config.from_params(params), "models/q/")  # a plain dict holding scales too


def test_int8_params_with_a_float_checkpoint_is_refused(int8_model, tiny_checkpoint_factory):
    params, _ = int8_model
    floats = torch.load(tiny_checkpoint_factory("gqa2") / "consolidated.00.pth", weights_only=True)
    with pytest.raises(InputError) as caught:
        check_int8(params, floats)
    assert str(caught.value).startswith('models/q/params.json says "quantization": "int8", but models/q/ holds no '
                                        "scales (no tensor named *_scale): its weights are not int8")


def test_an_int8_checkpoint_with_params_that_do_not_say_int8_is_refused(int8_model):
    params, state = int8_model
    with pytest.raises(InputError) as caught:
        check_int8({k: v for k, v in params.items() if k != "quantization"}, state)
    assert str(caught.value).startswith(f"models/q/ holds int8 weights and their scales ({WQ}_scale, ...), but "
                                        'models/q/params.json does not say "quantization": "int8"')


def test_an_int8_file_read_in_another_layout_than_its_params_say_is_refused(int8_model):
    params, state = int8_model
    packed = llama3_files.Config.from_params(params | {"quantization": "int8-packed"})
    check_checkpoint(merge_shards([state], [Path("x")], "int8-packed"), packed, "models/q/")  # read as it says
    with pytest.raises(InputError) as caught:  # read without params.json's layout: its columns would be misplaced
        check_checkpoint(merge_shards([state], [Path("x")]), packed, "models/q/")
    assert str(caught.value) == ('models/q/ was read as "quantization": "int8", but models/q/params.json says '
                                 '"int8-packed": load it with load_checkpoint(folder), which reads the layout from it')


@pytest.mark.parametrize("int8_params", [False, True], ids=["float-params", "int8-params"])
def test_an_int8_matrix_without_its_scale_is_refused(int8_params, int8_model, tiny_checkpoint_factory):
    params, state = int8_model
    if int8_params:  # an int8 checkpoint that lost one scale
        state = {name: t for name, t in state.items() if name != "layers.1.feed_forward.w2.weight_scale"}
    else:  # a float checkpoint with one matrix in int8 and no scales at all
        params = {k: v for k, v in params.items() if k != "quantization"}
        state = torch.load(tiny_checkpoint_factory("gqa2") / "consolidated.00.pth", weights_only=True)
        state["layers.1.feed_forward.w2.weight"] = quantize_rows(state["layers.1.feed_forward.w2.weight"])[0]
    with pytest.raises(InputError) as caught:
        check_int8(params, state, values=False)
    assert str(caught.value).startswith("layers.1.feed_forward.w2.weight in models/q/ holds int8 numbers but has no "
                                        "layers.1.feed_forward.w2.weight_scale")
    assert "scripts/quantize_checkpoint.py" in str(caught.value)


@pytest.mark.parametrize("case, expected", [
    ("nan", f"{WQ}_scale in models/q/ holds NaN (not a number) at [5], and a weight must be a finite number"),
    ("inf", f"{WQ}_scale in models/q/ holds +inf at [5], and a weight must be a finite number"),
    ("zero", f"{WQ}_scale in models/q/ holds 0.0 at [5], but a scale must be above 0"),
    ("negative", f"{WQ}_scale in models/q/ holds -0.5 at [5], but a scale must be above 0"),
    ("one-per-column", f"{WQ}_scale in models/q/ holds torch.float32 numbers of shape (1, 64), but {WQ} (64, 64) "
                       "needs one floating point scale per row, shape (64,)"),
    ("too-few", f"{WQ}_scale in models/q/ holds torch.float32 numbers of shape (63,), but {WQ} (64, 64) needs one"),
    ("integer", f"{WQ}_scale in models/q/ holds torch.int32 numbers of shape (64,), but {WQ} (64, 64) needs one "
                "floating point scale per row"),
    ("float-matrix", f"{WQ}_scale in models/q/ is the scale of an int8 matrix, but {WQ} holds torch.bfloat16 numbers"),
    ("scale-of-a-norm", "norm.weight_scale in models/q/ is the scale of a tensor the int8 format keeps as it is"),
    ("scale-of-nothing", "layers.7.attention.wq.weight_scale in models/q/ is the scale of no tensor of the file"),
])
@pytest.mark.parametrize("values", [True, False], ids=["values", "no-values"])
def test_a_bad_scale_is_named(case, expected, values, int8_model):
    """The scales are checked whatever VALUES says: they are small, and a bad one spoils a whole row."""
    params, state = int8_model
    state, scale = dict(state), state[WQ + "_scale"].clone()
    if case in ("nan", "inf", "zero", "negative"):
        scale[5] = {"nan": math.nan, "inf": math.inf, "zero": 0.0, "negative": -0.5}[case]
    elif case == "one-per-column":
        scale = scale[None, :]
    elif case == "too-few":
        scale = scale[:-1]
    elif case == "integer":
        scale = scale.int()
    elif case == "float-matrix":
        state[WQ] = state[WQ].bfloat16()
    elif case == "scale-of-a-norm":
        state["norm.weight_scale"] = torch.ones(1)
    elif case == "scale-of-nothing":
        state["layers.7.attention.wq.weight_scale"] = scale
    state[WQ + "_scale"] = scale
    with pytest.raises(InputError) as caught:
        check_int8(params, state, values=values)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_a_nan_in_an_int8_checkpoints_float_tensor_is_named(int8_model):
    params, state = int8_model
    state = dict(state, **{"layers.1.ffn_norm.weight": state["layers.1.ffn_norm.weight"].clone()})
    state["layers.1.ffn_norm.weight"][3] = math.nan
    check_int8(params, state, values=False)
    with pytest.raises(InputError, match=r"^layers\.1\.ffn_norm\.weight in models/q/ holds NaN \(not a number\) "
                                         r"at \[3\]"):
        check_int8(params, state)


def test_the_values_check_of_an_int8_checkpoint_never_dequantizes(int8_model, monkeypatch):
    params, state = int8_model
    checkpoint = merge_shards([state], [Path("x")])
    monkeypatch.setattr(Int8Checkpoint, "__getitem__", lambda self, name: pytest.fail(f"read {name} dequantized"))
    check_checkpoint(checkpoint, llama3_files.Config.from_params(params), "models/q/")
    assert llama3_files.count_parameters(checkpoint) == sum(t.numel() for n, t in state.items() if "_scale" not in n)
    assert "output.weight" in checkpoint and WQ + "_scale" not in checkpoint


def test_several_files_with_scales_are_refused(int8_model):
    _, state = int8_model
    with pytest.raises(InputError, match=r"^models/q/ holds 2 files with int8 weights and their scales, but an int8 "
                                         r"checkpoint is one file"):
        merge_shards([state, state], [Path(f"models/q/consolidated.0{i}.pth") for i in range(2)])
