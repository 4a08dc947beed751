"""Files and checks for llama3-from-scratch.ipynb: everything that guards the lesson, kept out of its way.

The notebook teaches Llama 3's math. What protects a reader from bad files and parameters lives here, in plain
Python that the notebook imports in one cell (the way rasbt's LLMs-from-scratch keeps earlier chapters in
previous_chapters.py), and that scripts and tests import as a normal module:

- the notebook's parameters, each one's type with its range (DEVICE, DTYPE, MAX_NEW_TOKENS, TEMPERATURE, TOP_P,
  SEED; PROMPT, PROMPT_SPECIAL_TOKENS, CHAT_MESSAGE; HEATMAP_LAYER; PROMPTS, MAX_BATCH_SIZE; MODEL_DIR);
- which model folder runs, preparing the demo model when there are no Meta weights;
- params.json: read, every key checked, and `Config`, the sizes the notebook names T, D, H, H_KV, Dh, L, F, V;
- the checkpoint: a failed download, a truncated file or a pickle that asks for code is named, several
  model-parallel files are merged lazily, every tensor's shape is checked against params.json, and every value
  is checked to be finite (a NaN or an infinity is named with its tensor);
- the int8 checkpoint that scripts/quantize_checkpoint.py writes (Int8Checkpoint, below): read as a dict of
  float32 matrices, dequantized one at a time when the lesson reads them;
- the tokenizer (Llama 3's tokenizer.model, or the demo model's own) and the prompt.

Each problem raises InputError with one message that names the file, key or parameter and says what to do.

The int8 format (a folder like Meta's: consolidated.00.pth, params.json, the tokenizer files):
- every matrix of every layer (attention.wq/wk/wv/wo, feed_forward.w1/w2/w3 `.weight`) and output.weight is
  stored as int8 under its own name, with one float32 scale per output row, shape (rows,), under the same name
  + "_scale" (layers.0.attention.wq.weight_scale);
- quantization is per row: scale = max|w_row| / 127, computed in float32 from the source weights converted to
  float32, and q = round(w / scale) clamped to [-127, 127]; a row of zeros gets scale 1.0 (q is 0 there), so
  that nothing divides by zero. Dequantized, w ≈ q · scale, within scale / 2 of the source weight;
- tok_embeddings.weight and the norms stay exactly as stored in the source (the embedding lookup stays exact);
- a tied source (no output.weight) gets an output.weight: the int8 copy of tok_embeddings.weight;
- params.json is the source's with one key added, "quantization": "int8", or "int8-packed" for the packed
  layout (what scripts/quantize_checkpoint.py writes by default): each int8 matrix is stored with its columns
  interleaved, stored column 4k + j holding column j·in/4 + k (interleave_columns), so that its bytes are
  the notebook's speed-up 7 words, four weights to a 32-bit word, and section 19's compiled step reads them
  from the file with no copy (on a little-endian CPU). Dequantized, both layouts give the same matrix.

Usage:
    from llama3_files import InputError, read_params, Config, load_checkpoint, check_checkpoint
    cfg = Config.from_params(read_params(model_dir))
    checkpoint = load_checkpoint(model_dir)   # torch.load(..., weights_only=True, mmap=True), checked
    check_checkpoint(checkpoint, cfg, str(model_dir))
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import tiktoken
import torch
from tiktoken.load import load_tiktoken_bpe
from torch import Tensor
from tqdm import tqdm


class InputError(Exception):
    """A problem with the files or the parameters you gave: the message names it and says what to do."""


# --------------------------------------------------------------------------- the parameters

def check_parameters(device: str | None, dtype: str | None, max_new_tokens: int, temperature: float,
                     top_p: float, seed: int = 0, compile_step: bool = False) -> torch.device:
    """The notebook's parameters, checked before anything is loaded; returns the device to compute on.

    Each one's type is checked with its range, so that a wrong one is named here, not by a comparison or a
    torch call many cells later: TEMPERATURE = "hot" ends in "it must be a number", not in a TypeError.
    """
    if device is not None and not isinstance(device, (str, torch.device)):
        raise InputError(f"DEVICE = {device!r}: use None, 'cpu', 'cuda' or 'mps' (a string)")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError:
        raise InputError(f"DEVICE = {device!r} is not a device: use None, 'cpu', 'cuda' or 'mps'") from None
    if not (dtype is None or isinstance(dtype, str) and dtype in ("float32", "bfloat16", "float16")):
        raise InputError(f"DTYPE = {dtype!r}: use None, 'float32', 'bfloat16' or 'float16'")
    if device.type == "cuda" and not torch.cuda.is_available() or device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"DEVICE = {str(device)!r}, but this machine has no {device.type} device: use None or 'cpu'")
    if not is_whole_number(max_new_tokens) or max_new_tokens < 1:
        raise InputError(f"MAX_NEW_TOKENS = {max_new_tokens!r}: it must be a whole number of at least 1")
    if not is_real_number(temperature) or not temperature >= 0:  # NaN is not >= 0
        raise InputError(f"TEMPERATURE = {temperature!r}: it must be a number, 0 (greedy) or more")
    if not is_real_number(top_p) or not 0 < top_p <= 1:
        raise InputError(f"TOP_P = {top_p!r}: it must be a number more than 0 and at most 1")
    if not isinstance(compile_step, bool):
        raise InputError(f"COMPILE = {compile_step!r}: it must be True or False")
    if compile_step and device.type == "cpu" and cpp_compiler() is None:  # else torch.compile fails cells later
        raise InputError("COMPILE = True: on the CPU, torch.compile writes C++ and needs a C++ compiler, and none was "
                         f"found (the CXX variable, or one of {', '.join(CPP_COMPILERS)} on the PATH): install one "
                         "(Debian or Ubuntu: apt install g++; macOS: xcode-select --install) or set COMPILE = False")
    if not is_whole_number(seed) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise InputError(f"SEED = {seed!r}: it must be a whole number, e.g. 0 (torch.Generator().manual_seed takes "
                         "-2**63 to 2**64 - 1)")
    return device


SEED_RANGE = (-2**63, 2**64 - 1)  # what torch.Generator().manual_seed accepts
CPP_COMPILERS = ("g++", "clang++", "c++", "cl")  # what Inductor can build its CPU code with


def cpp_compiler() -> str | None:
    """The path of a C++ compiler for torch.compile on the CPU (the CXX variable first), or None."""
    names = ([os.environ["CXX"]] if os.environ.get("CXX") else []) + list(CPP_COMPILERS)
    return next((path for name in names if (path := shutil.which(name))), None)


def check_text_parameters(prompt: str | None, prompt_special_tokens: bool, chat_message: str) -> None:
    """PROMPT (None or some text), PROMPT_SPECIAL_TOKENS (True or False) and CHAT_MESSAGE (some text).

    Checked before anything is loaded; whether a text fits the model's context is checked once the tokenizer
    has counted its tokens (check_prompt).
    """
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"PROMPT = {prompt!r}: it must be some text in quotes, or None for an example prompt")
    if prompt == "":
        raise InputError("PROMPT is empty: give the model some text to continue (PROMPT = None picks an example)")
    if not isinstance(prompt_special_tokens, bool):
        raise InputError(f"PROMPT_SPECIAL_TOKENS = {prompt_special_tokens!r}: it must be True or False")
    if not isinstance(chat_message, str):
        raise InputError(f"CHAT_MESSAGE = {chat_message!r}: it must be some text in quotes, what the user says")
    if not chat_message:
        raise InputError("CHAT_MESSAGE is empty: give the model some text to answer")


def is_whole_number(value) -> bool:
    """An int, but not a bool: True is not a number of tokens."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real_number(value) -> bool:
    """An int or a float, but not a bool, a string or a complex number (NaN is a float: a range check must
    reject it, as `not x >= 0` does)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_heatmap_layer(layer, n_layers: int) -> None:
    if not is_whole_number(layer):
        raise InputError(f"HEATMAP_LAYER = {layer!r}: it must be a whole number, one of this model's layers "
                         f"0..{n_layers - 1}")
    if not 0 <= layer < n_layers:
        raise InputError(f"HEATMAP_LAYER = {layer!r}, but this model's layers are 0..{n_layers - 1}")


# --------------------------------------------------------------------------- which model runs

META_DIR = Path("Meta-Llama-3-8B")
DEMO_DIR = Path("models/SmolLM2-135M-Instruct")

EXPECTED_FILES = """it must hold Meta's files for one model:
  params.json          the sizes of the model
  consolidated.00.pth  the weights (big models have several: consolidated.00.pth, consolidated.01.pth, ...)
  tokenizer.model      optional for Llama 3: without it, the copy in Meta's llama-models package is used
Get them from Meta (see Meta-Llama-3-8B/README.md), convert Hugging Face files with scripts/convert_hf_checkpoint.py,
or set MODEL_DIR to None to run the demo model."""


def missing_files(folder: Path) -> list[str]:
    missing = [] if (folder / "params.json").is_file() else ["params.json"]
    if not sorted(folder.glob("consolidated.*.pth")):
        missing.append("consolidated.00.pth")
    return missing


def prepare_demo_model(folder: Path) -> None:
    # Stream the script's output into the notebook's cell, so the one-off preparation shows its progress.
    script = Path(__file__).resolve().parent / "prepare_demo_model.py"
    cmd = [sys.executable, str(script), "--out", str(folder)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="")
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/prepare_demo_model.py failed (exit code {proc.returncode}): see its message above")


def find_model_dir(model_dir: str | Path | None) -> Path:
    """MODEL_DIR if given (checked); else Meta's 8B if its weights are there; else the demo model, prepared once."""
    if model_dir is not None and not isinstance(model_dir, (str, os.PathLike)):
        raise InputError(f"MODEL_DIR = {model_dir!r}: it must be a folder's path in quotes, e.g. 'Meta-Llama-3-8B', "
                         "or None")
    if model_dir is not None:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise InputError(f"MODEL_DIR = {str(model_dir)!r} is not a folder (the notebook runs in "
                             f"{Path.cwd().name}/); " + EXPECTED_FILES)
        if missing := missing_files(model_dir):
            raise InputError(f"MODEL_DIR = {str(model_dir)!r} lacks {', '.join(missing)}; " + EXPECTED_FILES)
        return model_dir
    if not missing_files(META_DIR):
        return META_DIR
    print(f"No Meta weights in {META_DIR}/ (see {META_DIR}/README.md for how to get them).")
    print(f"Running the demo model instead: SmolLM2-135M-Instruct, converted to Meta's format in {DEMO_DIR}/.")
    if missing_files(DEMO_DIR) or not (DEMO_DIR / "tokenizer_config.json").is_file():
        prepare_demo_model(DEMO_DIR)
    return DEMO_DIR


# --------------------------------------------------------------------------- params.json and the sizes

PARAMS_REQUIRED = {"dim": "int", "n_layers": "int", "n_heads": "int", "vocab_size": "int", "multiple_of": "int",
                   "norm_eps": "float", "rope_theta": "float"}
PARAMS_OPTIONAL = {"n_kv_heads": "int", "ffn_dim_multiplier": "float", "use_scaled_rope": "bool",
                   "rope_scaling_factor": "float", "max_seq_len": "int"}
PARAMS_KINDS = {"int": "a positive whole number", "float": "a positive number", "bool": "true or false"}
QUANTIZATIONS = ("int8", "int8-packed")  # params.json's optional "quantization": how the matrices are stored
PACKED = "int8-packed"  # the int8 matrices' columns interleaved four by four (interleave_columns)
INT8_PER_WORD = 4  # int8 weights in a 32-bit word of the packed layout: the notebook's PER_WORD
LLAMA3_CONTEXT, LLAMA3_1_CONTEXT = 8192, 131072  # tokens: Llama 3, and Llama 3.1 and later (use_scaled_rope)


def read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} is missing: {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not valid JSON ({error}): {what}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} holds a {type(value).__name__}, not a JSON object: {what}")
    return value


def read_params(model_dir: Path) -> dict:
    """model_dir/params.json, with every key Meta's code reads checked for presence and kind."""
    path = Path(model_dir) / "params.json"
    params = read_json(path, "restore the params.json that came with the weights")
    if missing := [key for key in PARAMS_REQUIRED if key not in params]:
        raise InputError(f"{path} lacks {', '.join(map(repr, missing))}: Meta's params.json has every one of "
                         f"{', '.join(PARAMS_REQUIRED)}; restore the file that came with the weights")
    for key, kind in (PARAMS_REQUIRED | PARAMS_OPTIONAL).items():
        value = params.get(key)
        if value is None and key in PARAMS_OPTIONAL:
            continue
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = {"bool": isinstance(value, bool), "int": is_number and value == int(value) and value > 0,
              "float": is_number and value > 0}[kind]
        if not ok:
            raise InputError(f"{path}: {key!r} is {value!r}, but it must be {PARAMS_KINDS[kind]}")
    if "quantization" in params and params["quantization"] not in QUANTIZATIONS:
        raise InputError(f"{path}: 'quantization' is {params['quantization']!r}, but the only quantizations this "
                         f"notebook reads are {' and '.join(map(json.dumps, QUANTIZATIONS))} (what "
                         "scripts/quantize_checkpoint.py writes); remove the key for weights stored as floating point "
                         "numbers")
    return params


def ffn_hidden_size(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """F, as Meta derives it: 2/3 of 4·D, scaled by ffn_dim_multiplier, rounded up to a multiple of multiple_of."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * math.ceil(hidden / multiple_of)


@dataclass(frozen=True)
class Config:
    """The sizes of one model, from its params.json, checked to fit together."""
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    ffn_hidden: int
    norm_eps: float
    rope_theta: float
    use_scaled_rope: bool
    rope_scaling_factor: float | None = None  # None: Meta's 8 (Llama 3.1); Llama 3.2 1B/3B use 32
    max_seq_len: int = LLAMA3_CONTEXT  # the longest text the model was trained for (Meta's model cards; params.json may say it)
    quantization: str | None = None  # "int8": params.json says the matrices are stored as int8 (Int8Checkpoint)

    def __post_init__(self):
        if self.dim % self.n_heads:
            raise InputError(f"params.json: dim = {self.dim} does not split into n_heads = {self.n_heads} equal heads")
        if self.n_heads % self.n_kv_heads:
            raise InputError(f"params.json: n_heads = {self.n_heads} is not a multiple of n_kv_heads = {self.n_kv_heads}")
        if self.head_dim % 2:
            raise InputError(f"params.json: a head of dim / n_heads = {self.head_dim} numbers cannot be split into "
                             "the pairs RoPE rotates")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_params(cls, params: dict) -> "Config":
        return cls(dim=int(params["dim"]), n_layers=int(params["n_layers"]), n_heads=int(params["n_heads"]),
                   n_kv_heads=int(params.get("n_kv_heads") or params["n_heads"]),  # none given: one per query head
                   vocab_size=int(params["vocab_size"]),
                   ffn_hidden=ffn_hidden_size(params["dim"], params["multiple_of"], params.get("ffn_dim_multiplier")),
                   norm_eps=params["norm_eps"], rope_theta=params["rope_theta"],
                   use_scaled_rope=params.get("use_scaled_rope", False),
                   rope_scaling_factor=params.get("rope_scaling_factor"),
                   max_seq_len=int(params.get("max_seq_len") or (LLAMA3_1_CONTEXT if params.get("use_scaled_rope")
                                                                 else LLAMA3_CONTEXT)),
                   quantization=params.get("quantization"))


# --------------------------------------------------------------------------- the checkpoint

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
SHARD_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "tok_embeddings": 0, "wo": -1, "w2": -1}


def checkpoint_paths(model_dir: Path) -> list[Path]:
    """consolidated.00.pth, consolidated.01.pth, ...: checked that there is at least one and that none is missing."""
    paths = sorted(Path(model_dir).glob("consolidated.*.pth"))
    expected = [Path(model_dir) / f"consolidated.{i:02d}.pth" for i in range(len(paths))]
    if not paths:
        raise InputError(f"{model_dir}/ has no consolidated.00.pth; " + EXPECTED_FILES)
    if paths != expected:
        raise InputError(f"{model_dir}/ has {[p.name for p in paths]}, but the files of a model are numbered "
                         f"consolidated.00.pth to consolidated.{len(paths) - 1:02d}.pth without gaps: is one missing?")
    return paths


@contextlib.contextmanager
def load_errors_named(path: Path) -> Iterator[None]:
    """Around torch.load(path, ...): a failed download or a pickle that asks for code ends in one InputError.

    Before loading: a file that does not start like a zip archive is named for what it is (often an HTML or XML
    error page). While loading: weights_only=True's refusal and torch's zip errors (a file cut short) are
    translated into a message, without a traceback from inside torch.
    """
    path = Path(path)
    fix = (f"Download it again, then compare every file with Meta's checksums: "
           f"python scripts/verify_checkpoint.py {path.parent}")
    with open(path, "rb") as file:
        head = file.read(1024)
    if not head.startswith(ZIP_MAGIC):
        page = re.search(rb"<!doctype html|<html|<head|<body|<\?xml|<error>", head.lower())
        what = (f"an {'XML' if page.group().startswith(b'<?xml') else 'HTML'} page, not a checkpoint: the download "
                "failed (an expired link answers 403 with such a page)" if page else
                "empty" if not head else "not a PyTorch checkpoint (torch.save writes a zip archive)")
        raise InputError(f"{path} ({path.stat().st_size:,} bytes) is {what}. {fix}")
    try:
        yield
    except pickle.UnpicklingError as error:  # weights_only=True refused an object that is not a tensor
        wanted = ", ".join(sorted(set(re.findall(r"GLOBAL (\S+)", str(error))))) or "an object that is not a tensor"
        raise InputError(f"refused to load {path}: its pickle asks for {wanted}, which could run code on your "
                         f"machine. Meta's checkpoints hold tensors only; do not load this file with "
                         f"weights_only=False. {fix}") from None
    except (RuntimeError, EOFError, ValueError) as error:  # torch's zip reader: a file cut short or damaged
        raise InputError(f"{path} is truncated or corrupt ({str(error).splitlines()[0]}). {fix}") from None


def check_state_dict(state, path: Path) -> None:
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise InputError(f"{path} holds a {type(state).__name__}, not a dict of named tensors like Meta's checkpoints")


def load_checkpoint_file(path: Path) -> dict[str, Tensor]:
    """One checkpoint file, memory-mapped, tensors only (weights_only=True: a pickle never runs code)."""
    with load_errors_named(path):
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    check_state_dict(state, path)
    return state


class ShardedCheckpoint(Mapping):
    """Several model-parallel files seen as one dict; a tensor is merged from its slices when it is read.

    Matrices that produce one slice of outputs per GPU (wq, wk, wv, w1, w3, output, the embedding's vocabulary)
    were split along their rows, the two that consume such slices (wo, w2) along their columns; norms are whole
    in every file.
    """

    def __init__(self, shards: list[dict[str, Tensor]]):
        self.shards = shards

    def __getitem__(self, name: str) -> Tensor:
        dim = SHARD_DIM.get(name.split(".")[-2])
        if dim is None:  # a norm: every shard holds the same whole copy
            return self.shards[0][name]
        return torch.cat([shard[name] for shard in self.shards], dim=dim)

    def __iter__(self):
        return iter(self.shards[0])

    def __len__(self) -> int:
        return len(self.shards[0])

    def shape(self, name: str) -> tuple[int, ...]:
        shape = list(self.shards[0][name].shape)
        if (dim := SHARD_DIM.get(name.split(".")[-2])) is not None:
            shape[dim] = sum(shard[name].shape[dim] for shard in self.shards)
        return tuple(shape)


SCALE_SUFFIX = "_scale"  # int8 format: the scales of the matrix NAME are stored under NAME + "_scale"
INT8_MATRICES = ("wq", "wk", "wv", "wo", "w1", "w2", "w3", "output")  # what the int8 format quantizes (+ ".weight")


def is_int8_matrix(name: str) -> bool:
    """True for the names the int8 format stores as int8: every layer's matrices and output.weight."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in INT8_MATRICES


def interleave_columns(q: Tensor) -> Tensor:
    """(out, in) -> (out, in): column j·in/4 + k moves to 4k + j, the packed layout (the notebook's interleave)."""
    return q.unflatten(-1, (INT8_PER_WORD, -1)).transpose(-1, -2).flatten(-2)


def deinterleave_columns(q: Tensor) -> Tensor:
    """The inverse of interleave_columns: every column of a packed matrix back in its place."""
    return q.unflatten(-1, (-1, INT8_PER_WORD)).transpose(-1, -2).flatten(-2)


class Int8Checkpoint(Mapping):
    """An int8 checkpoint (the format in this module's docstring) seen as a dict of Meta's names.

    The `_scale` entries are not keys. checkpoint[name] of a quantized matrix is the dequantized float32 matrix,
    q.float() * scale[:, None] (the columns of a packed matrix back in their places), made when it is read (one
    matrix at a time, as the lesson reads them); any other name is the stored tensor. int8(name) gives the
    stored (q, scale) (a packed q as stored: PACKED), shape(name) the shape, neither converts.
    """

    def __init__(self, state: dict[str, Tensor], quantization: str = "int8"):
        self.state = state  # as loaded: the int8 matrices, their scales, the float tensors
        self.scales = {name.removesuffix(SCALE_SUFFIX): t for name, t in state.items() if name.endswith(SCALE_SUFFIX)}
        self.quantization = quantization  # params.json's: "int8", or PACKED for interleaved columns

    def __getitem__(self, name: str) -> Tensor:
        if name.endswith(SCALE_SUFFIX):
            raise KeyError(name)
        if (stored := self.int8(name)) is None:
            return self.state[name]
        q, scale = stored
        if self.quantization == PACKED:
            q = deinterleave_columns(q)
        return q.float() * scale[:, None]

    def __contains__(self, name) -> bool:  # without reading the tensor (Mapping's would dequantize it)
        return isinstance(name, str) and name in self.state and not name.endswith(SCALE_SUFFIX)

    def __iter__(self):
        return (name for name in self.state if not name.endswith(SCALE_SUFFIX))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def int8(self, name: str) -> tuple[Tensor, Tensor] | None:
        """(q, scale) as stored for a quantized matrix; None for any other name."""
        return (self.state[name], self.scales[name]) if name in self.scales and name in self.state else None

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.state[name].shape)


def has_scales(state: Mapping[str, Tensor]) -> bool:
    return any(name.endswith(SCALE_SUFFIX) for name in state)


def merge_shards(shards: list, paths: list[Path], quantization: str | None = None) -> Mapping[str, Tensor]:
    """The loaded files as one dict of tensors: the file itself, an Int8Checkpoint if it holds scales (stored as
    QUANTIZATION says, params.json's "quantization"; "int8" when it says nothing), or a ShardedCheckpoint of
    several."""
    for state, path in zip(shards, paths):
        check_state_dict(state, path)
    if len(shards) > 1 and (odd := [p.name for p, s in zip(paths, shards) if s.keys() != shards[0].keys()]):
        raise InputError(f"{', '.join(odd)} hold other tensors than {paths[0].name}: the files come from different models")
    if len(shards) > 1 and has_scales(shards[0]):
        raise InputError(f"{paths[0].parent}/ holds {len(shards)} files with int8 weights and their scales, but an "
                         "int8 checkpoint is one file: quantize the original files with scripts/quantize_checkpoint.py")
    if len(shards) == 1:
        return Int8Checkpoint(shards[0], quantization or "int8") if has_scales(shards[0]) else shards[0]
    return ShardedCheckpoint(shards)


def load_checkpoint(model_dir: Path) -> Mapping[str, Tensor]:
    """All of model_dir's consolidated.*.pth files as one dict of tensors, memory-mapped and checked (an int8
    file read in the layout its params.json names)."""
    paths = checkpoint_paths(model_dir)
    shards = [load_checkpoint_file(path) for path in paths]
    quantization = read_params(model_dir).get("quantization") if has_scales(shards[0]) else None
    return merge_shards(shards, paths, quantization)


def tensor_shape(checkpoint: Mapping[str, Tensor], name: str) -> tuple[int, ...]:
    """NAME's shape, without merging its slices (ShardedCheckpoint) or dequantizing it (Int8Checkpoint)."""
    if isinstance(checkpoint, (ShardedCheckpoint, Int8Checkpoint)):
        return checkpoint.shape(name)
    return tuple(checkpoint[name].shape)


def stored_tensor(checkpoint: Mapping[str, Tensor], name: str) -> Tensor:
    """NAME as the file stores it: its slice in the first file, or its int8 numbers; never a merged copy."""
    if isinstance(checkpoint, ShardedCheckpoint):
        return checkpoint.shards[0][name]
    return checkpoint.state[name] if isinstance(checkpoint, Int8Checkpoint) else checkpoint[name]


LAYER_TENSORS = {  # short name used in the notebook -> Meta's name inside layers.{i}.
    "attention_norm": "attention_norm.weight", "wq": "attention.wq.weight", "wk": "attention.wk.weight",
    "wv": "attention.wv.weight", "wo": "attention.wo.weight", "ffn_norm": "ffn_norm.weight",
    "w1": "feed_forward.w1.weight", "w2": "feed_forward.w2.weight", "w3": "feed_forward.w3.weight",
}
SHAPE_KEYS = {  # the params.json keys each tensor's shape comes from
    "tok_embeddings": "vocab_size, dim", "output": "vocab_size, dim", "norm": "dim", "attention_norm": "dim",
    "ffn_norm": "dim", "wq": "dim, n_heads", "wk": "dim, n_heads, n_kv_heads", "wv": "dim, n_heads, n_kv_heads",
    "wo": "dim, n_heads", "w1": "dim, multiple_of, ffn_dim_multiplier", "w2": "dim, multiple_of, ffn_dim_multiplier",
    "w3": "dim, multiple_of, ffn_dim_multiplier",
}


def expected_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    D, H, H_KV, Dh, F, V = cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn_hidden, cfg.vocab_size
    layer = {"attention_norm": (D,), "wq": (H * Dh, D), "wk": (H_KV * Dh, D), "wv": (H_KV * Dh, D),
             "wo": (D, H * Dh), "ffn_norm": (D,), "w1": (F, D), "w2": (D, F), "w3": (F, D)}
    shapes = {"tok_embeddings.weight": (V, D), "norm.weight": (D,), "output.weight": (V, D)}
    return shapes | {f"layers.{i}.{LAYER_TENSORS[k]}": s for i in range(cfg.n_layers) for k, s in layer.items()}


def check_checkpoint(checkpoint: Mapping[str, Tensor], cfg: Config, where: str, values: bool = True) -> None:
    """Every tensor present, of the shape params.json implies, floating point, and (VALUES) every value finite.

    A tied output may be absent. The values check (check_values) reads every byte of the checkpoint once; it
    costs about what reading the file costs, and leaves it in the page cache, so the first forward pass does not
    wait on the disk. VALUES=False: the shapes and dtypes only (a script that reads part of the file checks the
    values of that part itself).

    An int8 checkpoint (Int8Checkpoint; a loaded dict that holds scales is read as one) passes when its
    params.json says "quantization": "int8" (cfg.quantization; and a params.json that says so needs one), every
    matrix is int8 and has its scales, floating point of shape (rows,), finite and above 0 (checked whatever
    VALUES says: they are small), and the other tensors pass as above. Its values check reads the stored
    tensors, never a dequantized matrix: int8 numbers cannot be NaN, the scales and float tensors are checked.
    """
    if not isinstance(checkpoint, (ShardedCheckpoint, Int8Checkpoint)) and has_scales(checkpoint):
        checkpoint = Int8Checkpoint(checkpoint, cfg.quantization or "int8")  # a file loaded on its own
    check_quantization(checkpoint, cfg, where)
    expected = expected_shapes(cfg)
    tied = "output.weight" not in checkpoint
    missing = [name for name in expected if name not in checkpoint and not (tied and name == "output.weight")]
    unexpected = [name for name in checkpoint if name not in expected]
    if missing or unexpected:
        layers = sorted({int(name.split(".")[1]) for name in checkpoint if name.startswith("layers.")})
        held = f"layers {layers[0]}..{layers[-1]}" if layers else "no layers"
        raise InputError(f"{where} does not match its params.json (n_layers = {cfg.n_layers}; the weights hold {held}): "
                         f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}, "
                         f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
    for name in checkpoint:
        if (shape := tensor_shape(checkpoint, name)) != expected[name]:
            raise InputError(f"{name} has shape {shape}, but params.json implies {expected[name]} (from its "
                             f"{SHAPE_KEYS[name.split('.')[-2]]}): the weights in {where} and params.json do not "
                             "belong together")
        stored = stored_tensor(checkpoint, name)
        if isinstance(checkpoint, Int8Checkpoint) and is_int8_matrix(name):
            check_int8_matrix(checkpoint, name, where)
        elif stored.dtype == torch.int8:
            raise InputError(f"{name} in {where} holds int8 numbers but has no {name}{SCALE_SUFFIX}: int8 weights "
                             "mean nothing without the scales that scripts/quantize_checkpoint.py stores beside them "
                             f"{'(and it quantizes only the matrices) ' if not is_int8_matrix(name) else ''}"
                             f"{REQUANTIZE}")
        elif not stored.is_floating_point():
            raise InputError(f"{name} in {where} holds {stored.dtype} numbers, not weights")
    if values:
        check_values(checkpoint, where)


REQUANTIZE = ("the file is damaged or was not written by it: quantize the original weights again "
              "(python scripts/quantize_checkpoint.py SRC DST)")


def check_quantization(checkpoint: Mapping[str, Tensor], cfg: Config, where: str) -> None:
    """params.json's "quantization" and the file agree: "int8" or "int8-packed" with scales in the file (read in
    that layout), neither without; and every scale in the file belongs to a matrix the int8 format quantizes."""
    params = Path(checkpoint_folder(where)) / "params.json"
    if cfg.quantization is not None and not isinstance(checkpoint, Int8Checkpoint):
        raise InputError(f'{params} says "quantization": "{cfg.quantization}", but {where} holds no scales (no tensor '
                         f"named *{SCALE_SUFFIX}): its weights are not int8. The two files do not belong together: "
                         'restore the params.json that came with these weights (it has no "quantization"), or quantize '
                         "them with python scripts/quantize_checkpoint.py SRC DST")
    if not isinstance(checkpoint, Int8Checkpoint):
        return
    if cfg.quantization is None:
        raise InputError(f"{where} holds int8 weights and their scales ({next(iter(checkpoint.scales))}{SCALE_SUFFIX}, "
                         f'...), but {params} does not say "quantization": "int8" (or "{PACKED}"): the two files do '
                         "not belong together; use the params.json that scripts/quantize_checkpoint.py wrote beside "
                         "these weights")
    if checkpoint.quantization != cfg.quantization:  # a loader that did not read params.json (load_checkpoint does)
        raise InputError(f'{where} was read as "quantization": "{checkpoint.quantization}", but {params} says '
                         f'"{cfg.quantization}": load it with load_checkpoint(folder), which reads the layout from it')
    for name in checkpoint.scales:
        if name not in checkpoint.state or not is_int8_matrix(name):
            whose = ("no tensor of the file" if name not in checkpoint.state else
                     "a tensor the int8 format keeps as it is (only the layers' matrices and output.weight are int8)")
            raise InputError(f"{name}{SCALE_SUFFIX} in {where} is the scale of {whose}: {REQUANTIZE}")


def check_int8_matrix(checkpoint: Int8Checkpoint, name: str, where: str) -> None:
    """NAME is int8, with its scales beside it: floating point, one per row, each finite and above 0."""
    q, scale = checkpoint.state[name], checkpoint.scales.get(name)
    if scale is None:
        what = "int8 numbers" if q.dtype == torch.int8 else f"{q.dtype} numbers"
        raise InputError(f"{name} in {where} holds {what} but has no {name}{SCALE_SUFFIX}: in an int8 checkpoint "
                         f"every matrix is int8, with one scale per row beside it; {REQUANTIZE}")
    if q.dtype != torch.int8:
        raise InputError(f"{name}{SCALE_SUFFIX} in {where} is the scale of an int8 matrix, but {name} holds "
                         f"{q.dtype} numbers, not int8: {REQUANTIZE}")
    if not scale.is_floating_point() or tuple(scale.shape) != (q.shape[0],):
        raise InputError(f"{name}{SCALE_SUFFIX} in {where} holds {scale.dtype} numbers of shape {tuple(scale.shape)}, "
                         f"but {name} {tuple(q.shape)} needs one floating point scale per row, shape ({q.shape[0]},): "
                         f"{REQUANTIZE}")
    bad = (~(torch.isfinite(scale) & (scale > 0))).nonzero()
    if len(bad):
        index = bad[0].tolist()
        value = scale[tuple(index)].item()
        if not math.isfinite(value):
            raise non_finite_error(f"{name}{SCALE_SUFFIX}", "", where, finite_name(value), f" at {index}")
        raise InputError(f"{name}{SCALE_SUFFIX} in {where} holds {value!r} at {index}, but a scale must be above 0 "
                         "(the row's weights are q · scale: 0 erases them, a negative scale flips them): "
                         f"{REQUANTIZE}")


VALUES_BLOCK_BYTES = 32 * 2**20  # check_values reads a tensor this many bytes (whole rows) at a time
VALUES_PROGRESS_BYTES = 2**30  # a checkpoint bigger than this gets a progress bar while its values are checked


def check_values(checkpoint: Mapping[str, Tensor], where: str, names: list[str] | None = None,
                 block_bytes: int = VALUES_BLOCK_BYTES) -> None:
    """Every value of every tensor (or of NAMES) is a finite number: a NaN or ±inf is named with its tensor.

    A NaN or an infinity in a weight spreads through every layer after it (0 · inf is NaN): without this check
    it shows only as NaN logits, sections later. The tensors are read, never written (memory-mapped ones stay
    the file's pages), a block of whole rows at a time, so that the memory this needs stays small: a block's
    sum screens it (a NaN or inf makes the sum NaN or inf; the sum makes no copy and runs at the speed of
    memory), and only a block whose sum is not finite is looked at with torch.isfinite, which is exact, and
    names the first bad value. It reads every byte of the checkpoint once, so it also brings the file into
    the page cache for the first forward pass; with a progress bar when that is over 1 GiB. Integer tensors
    (an int8 checkpoint's matrices) are skipped: they cannot hold a NaN or an infinity; an Int8Checkpoint's
    stored tensors are read, its scales among them, never a dequantized matrix.
    """
    if isinstance(checkpoint, ShardedCheckpoint):  # each file's slice, never a merged copy
        n = len(checkpoint.shards)
        parts = [(name, shard[name], f" (its slice in consolidated.{i:02d}.pth, file {i + 1} of {n})")
                 for i, shard in enumerate(checkpoint.shards) for name in (shard if names is None else names)]
    else:
        state = checkpoint.state if isinstance(checkpoint, Int8Checkpoint) else checkpoint  # stored, not dequantized
        if names is not None and isinstance(checkpoint, Int8Checkpoint):
            names = [n for name in names for n in (name, name + SCALE_SUFFIX) if n in state]
        parts = [(name, state[name], "") for name in (state if names is None else names)]
    parts = [part for part in parts if part[1].is_floating_point()]  # int8 numbers cannot be NaN or infinite
    total = sum(tensor.numel() * tensor.element_size() for _, tensor, _ in parts)
    with tqdm(total=total, unit="B", unit_scale=True, desc="checking the weights' values", file=sys.stderr,
              ncols=80, mininterval=1.0, leave=False, disable=total <= VALUES_PROGRESS_BYTES) as bar:
        for name, tensor, slice_of in parts:
            for start, block in row_blocks(tensor, block_bytes):
                # a NaN or inf makes the sum NaN or inf (and so may an overflow of finite values: look closer)
                if not torch.isfinite(block.sum()) and (bad := first_non_finite(block)):
                    what, (row, *rest) = bad
                    at = f" at {[start + row, *rest][:tensor.dim()]}" if tensor.dim() else ""
                    raise non_finite_error(name, slice_of, where, what, at)
                bar.update(block.numel() * block.element_size())


def non_finite_error(name: str, slice_of: str, where: str, what: str, at: str) -> InputError:
    """The message for a NaN or an infinity (WHAT, AT) found in the tensor NAME of WHERE."""
    return InputError(f"{name}{slice_of} in {where} holds {what}{at}, and a weight must be a finite number: the file "
                      "is damaged (or was saved from a training run that diverged). Download it again, then compare "
                      "every file with Meta's checksums: "
                      f"python scripts/verify_checkpoint.py {checkpoint_folder(where)}")


def finite_name(value: float) -> str:
    return "NaN (not a number)" if math.isnan(value) else "+inf" if value > 0 else "-inf"


def first_non_finite(block: Tensor) -> tuple[str, list[int]] | None:
    """("NaN (not a number)", "+inf" or "-inf", and its index) for BLOCK's first value that is not finite."""
    bad = (~torch.isfinite(block)).nonzero()
    if not len(bad):
        return None
    index = bad[0].tolist()
    return finite_name(block[tuple(index)].item()), index


def row_blocks(tensor: Tensor, block_bytes: int) -> Iterator[tuple[int, Tensor]]:
    """(first row, view) for blocks of whole rows of TENSOR, about BLOCK_BYTES each (a 0-d tensor: one block)."""
    rows = tensor.reshape(1) if tensor.dim() == 0 else tensor
    row_bytes = max(1, rows[0].numel() * rows.element_size()) if len(rows) else 1
    step = max(1, block_bytes // row_bytes)
    for start in range(0, len(rows), step):
        yield start, rows[start:start + step]


def checkpoint_folder(where: str) -> str:
    """The model folder of WHERE, which names the folder or one of its consolidated.*.pth files."""
    path = Path(where)
    return str(path.parent if path.suffix == ".pth" else path)


def count_parameters(checkpoint: Mapping[str, Tensor]) -> int:
    return sum(math.prod(tensor_shape(checkpoint, name)) for name in checkpoint)


BIG_MODEL_PARAMS = 3e9  # above this, float32 copies of the weights cost more than a laptop has


def choose_dtype(dtype: str | None, checkpoint: Mapping[str, Tensor]) -> tuple[torch.dtype, str]:
    """The compute dtype (DTYPE, or float32 unless the model is big and stored in 16 bits) and why."""
    stored, n_params = checkpoint["norm.weight"].dtype, count_parameters(checkpoint)
    if dtype is not None:
        return getattr(torch, dtype), "set by DTYPE"
    if stored != torch.float32 and n_params > BIG_MODEL_PARAMS:
        return stored, (f"a {n_params / 1e9:.0f}B model stored in {stored}: float32 would convert every weight at "
                        "every token, about twice as slow to generate")
    return torch.float32, "a small model: float32 for results that match the references digit for digit"


# --------------------------------------------------------------------------- the tokenizer

LLAMA3_PAT_STR = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_NUM_SPECIAL = 256  # special tokens after the ordinary ones; the unnamed ones are <|reserved_special_token_N|>
LLAMA3_0_SPECIAL_TOKENS = [  # Llama 3 (meta-llama/llama3, llama/tokenizer.py)
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|reserved_special_token_4|>", "<|eot_id|>",
]
LLAMA3_1_SPECIAL_TOKENS = [  # Llama 3.1, 3.2, 3.3 (llama_models/llama3/tokenizer.py)
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>",
]
LLAMA3_STOP_NAMES = ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")
TOKENIZER_CONFIG_KEYS = ("pat_str", "special_tokens", "bos_id", "add_bos", "stop_tokens")


def llama3_tokenizer_path() -> Path:
    """Meta-Llama-3-8B/tokenizer.model if you have it, else the identical copy inside Meta's llama-models package."""
    if (META_DIR / "tokenizer.model").is_file():
        return META_DIR / "tokenizer.model"
    return Path(str(files("llama_models") / "llama3" / "tokenizer.model"))


def load_bpe_ranks(path: Path) -> dict[bytes, int]:
    """The byte strings of tokenizer.model and their ranks: one "base64 rank" pair per line."""
    fix = "restore the tokenizer.model that came with the weights"
    if not path.is_file():
        raise InputError(f"{path} is missing: {fix}")
    try:
        ranks = load_tiktoken_bpe(str(path))
    except ValueError as error:  # a line that is not "base64 rank" (an HTML page, a truncated file, ...)
        raise InputError(f"{path} is not a tiktoken tokenizer file ({error}): {fix}") from None
    if not ranks or len(set(ranks.values())) != len(ranks):
        raise InputError(f"{path} is {'empty' if not ranks else 'damaged: two tokens share a rank'}: {fix}")
    return ranks


def llama3_special_tokens(n_ordinary: int, special_names: list[str] = LLAMA3_1_SPECIAL_TOKENS) -> dict[str, int]:
    """The 256 special tokens, with ids right after the ordinary ranks; the unnamed ones are reserved."""
    n_reserved_named = sum(name.startswith("<|reserved_special_token_") for name in special_names)
    names = special_names + [f"<|reserved_special_token_{n_reserved_named + i}|>"
                             for i in range(LLAMA3_NUM_SPECIAL - len(special_names))]
    return {name: n_ordinary + i for i, name in enumerate(names)}


def load_llama3_tokenizer(path: Path, special_names: list[str] = LLAMA3_1_SPECIAL_TOKENS) -> tiktoken.Encoding:
    ranks = load_bpe_ranks(Path(path))
    return tiktoken.Encoding(name="llama3", pat_str=LLAMA3_PAT_STR, mergeable_ranks=ranks,
                             special_tokens=llama3_special_tokens(len(ranks), special_names))


@dataclass
class ModelTokenizer:
    """The tokenizer that matches the weights that run, with the ids generation needs."""
    encoding: tiktoken.Encoding
    bos_id: int | None  # put in front of every prompt (None: the model wants none)
    stop_tokens: list[int]  # generation ends at any of these
    is_llama3: bool


def load_model_tokenizer(model_dir: Path, params: dict, vocab_size: int) -> ModelTokenizer:
    """model_dir's own tokenizer (tokenizer.model + tokenizer_config.json, like the demo) or Llama 3's."""
    config_path = model_dir / "tokenizer_config.json"
    if config_path.is_file():  # a model with its own tokenizer, like the demo
        config = read_json(config_path, "run scripts/prepare_demo_model.py again to rewrite it")
        if missing := [key for key in TOKENIZER_CONFIG_KEYS if key not in config]:
            raise InputError(f"{config_path} lacks {missing}: run scripts/prepare_demo_model.py again to rewrite it")
        encoding = tiktoken.Encoding(name=model_dir.name, pat_str=config["pat_str"],
                                     mergeable_ranks=load_bpe_ranks(model_dir / "tokenizer.model"),
                                     special_tokens=config["special_tokens"])
        tokenizer = ModelTokenizer(encoding, config["bos_id"] if config["add_bos"] else None, config["stop_tokens"],
                                   is_llama3=False)
    else:  # Llama 3: the same 128,256 tokens, with the special-token names of its version (3.1+: use_scaled_rope)
        special_names = LLAMA3_1_SPECIAL_TOKENS if "use_scaled_rope" in params else LLAMA3_0_SPECIAL_TOKENS
        path = model_dir / "tokenizer.model" if (model_dir / "tokenizer.model").is_file() else llama3_tokenizer_path()
        encoding = load_llama3_tokenizer(path, special_names)
        tokenizer = ModelTokenizer(encoding, encoding.encode_single_token("<|begin_of_text|>"),
                                   [encoding.encode_single_token(name) for name in LLAMA3_STOP_NAMES
                                    if name in encoding.special_tokens_set], is_llama3=True)
    if encoding.n_vocab != vocab_size:
        raise InputError(f"the tokenizer has {encoding.n_vocab:,} tokens, but {model_dir}/params.json says "
                         f"vocab_size = {vocab_size:,}: tokenizer.model and params.json come from different models")
    return tokenizer


# --------------------------------------------------------------------------- prompts

def check_prompt(text: str, tokens: list[int], max_seq_len: int, what: str = "PROMPT") -> None:
    if not text:
        raise InputError(f"{what} is empty: give the model some text to continue (PROMPT = None picks an example)")
    if len(tokens) >= max_seq_len:
        raise InputError(f"{what} is {len(tokens):,} tokens, but this model reads at most {max_seq_len:,} "
                         "(its context length), and needs room for at least one new token: shorten it")


def note_special_text(prompt: str, tokenizer: tiktoken.Encoding, allow_special: bool) -> None:
    if not allow_special and (typed := [name for name in tokenizer.special_tokens_set if name in prompt]):
        print(f"note: {typed} in PROMPT is encoded as plain text; PROMPT_SPECIAL_TOKENS = True makes it the special token")


def check_prompts(prompts, max_batch_size: int) -> None:
    """PROMPTS for batched generation: None (the examples), or a list of 1 to max_batch_size non-empty strings."""
    if not is_whole_number(max_batch_size) or max_batch_size < 1:
        raise InputError(f"MAX_BATCH_SIZE = {max_batch_size!r}: it must be a whole number of at least 1")
    if prompts is None:
        return
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise InputError(f"PROMPTS = {prompts!r}: give a list of one or more prompts, e.g. ['The sky is', 'Water is']")
    if len(prompts) > max_batch_size:
        raise InputError(f"PROMPTS has {len(prompts)} prompts, but MAX_BATCH_SIZE = {max_batch_size}: "
                         "give fewer prompts or raise MAX_BATCH_SIZE (the KV cache grows with it)")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt:
            raise InputError(f"PROMPTS[{i}] = {prompt!r}: every prompt must be some text to continue")
