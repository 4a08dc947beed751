"""Read the notebook's own code, so that tests and scripts share its one copy of the math.

Usage (from a script in scripts/ or a test):
    from notebook_code import load_notebook_functions
    nb = load_notebook_functions()          # a dict: name -> function, class or constant
    y = nb["rms_norm"](x, weight, eps)

Only imports, function and class definitions (with their decorators), and ALL_CAPS constants made of
literals are kept:
nothing that loads a model or depends on the notebook's parameters runs.
"""

import ast
import itertools
import sys
import types
from pathlib import Path

import nbformat
import torch
from torch import Tensor

from llama3_files import (LAYER_TENSORS, PACKED, Config, Int8Checkpoint, check_checkpoint, count_parameters,
                          load_checkpoint, read_params)

NOTEBOOK = Path(__file__).resolve().parent.parent / "llama3-from-scratch.ipynb"


CONSTANT_NODES = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.Tuple, ast.List, ast.Dict,
                  ast.Set, ast.expr_context)


def _is_literal_constant(node: ast.stmt) -> bool:
    """An ALL_CAPS assignment whose value is made of literals and arithmetic only (e.g. CHUNK = 64 * 2**20)."""
    if not isinstance(node, ast.Assign):
        return False
    names = [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
    return all(isinstance(t, ast.Name) and t.id.isupper() for t in names) \
        and all(isinstance(n, CONSTANT_NODES) for n in ast.walk(node.value))


def notebook_source(path: Path = NOTEBOOK) -> str:
    """The notebook's imports, definitions and literal constants, as one Python source."""
    notebook = nbformat.read(path, as_version=4)
    kept = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        lines = cell.source.splitlines()
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)) \
                    or _is_literal_constant(node):
                # a node's lineno is that of `def`/`class`: start at its first decorator so none is lost
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                kept.append("\n".join(lines[first - 1:node.end_lineno]))
    return "\n\n".join(kept)


def load_notebook_functions(path: Path = NOTEBOOK) -> dict:
    """Executes notebook_source() and returns its namespace: each call a fresh one.

    The namespace is a module's, registered in sys.modules under a name of its own, so that tools which look a
    function's module up by name (torch.compile does) find it.
    """
    module = types.ModuleType(f"llama3_from_scratch_notebook_{next(_loads)}")
    sys.modules[module.__name__] = module
    exec(compile(notebook_source(path), str(path), "exec"), module.__dict__)
    return module.__dict__


_loads = itertools.count()


def load_checked_checkpoint(model_dir: Path, values: bool = True):
    """(Config, checkpoint) of MODEL_DIR, read and checked with llama3_files, as the notebook's cells do.

    read_params, load_checkpoint (torch.load(..., weights_only=True, mmap=True): a pickle that would run code
    is refused without running it) and check_checkpoint. A damaged file, an HTML page, a params.json that
    does not fit the weights or (VALUES) a NaN or an infinity in a tensor raises llama3_files.InputError, whose
    message names the file, key or tensor. The values check reads the whole file once; VALUES=False skips it.
    """
    cfg = Config.from_params(read_params(model_dir))
    checkpoint = load_checkpoint(model_dir)
    check_checkpoint(checkpoint, cfg, str(model_dir), values=values)
    return cfg, checkpoint


# Section 19's speed-ups: each lesson function and the fast one that takes its place (notebook: swap_in({...})).
FAST_FUNCTIONS = {"layer_weights": "stacked_layer_weights", "project_qkv": "project_qkv_stacked",
                  "feed_forward": "feed_forward_stacked", "output_matrix": "stacked_output_matrix",
                  "attention_heads": "attention_heads_fused", "linear": "linear_blocked"}
STACKING = ("layer_weights", "project_qkv", "feed_forward", "output_matrix")  # these need a StackedModel
# Section 19's later steps: one decode step with a fixed-size cache, its products for bf16 and int8 weights, and
# the two functions torch.compile takes (notebook: swap_in({"forward": forward_fixed, "linear": linear_fast}), ...).
DECODE_FUNCTIONS = {"forward": "forward_fixed", "linear": "linear_packed"}  # linear_packed: int8 pairs too
COMPILED = ("decode_layer", "final_logits")
LESSON_NAMES = ("layer_weights", "project_qkv", "feed_forward", "attention_heads", "linear", "output_matrix", "forward")
WEIGHTS = ("float32", "bfloat16", "int8")


def keep_lesson_functions(nb: dict) -> None:
    """lesson_functions, as the notebook's cell keeps it (forward_fixed and stacked read it), in the globals the
    notebook's functions look names up in: NB itself, or the module behind a copy of it."""
    namespace = nb["swap_in"].__globals__
    namespace.setdefault("lesson_functions", {name: namespace[name] for name in LESSON_NAMES})


def use_fast_path(nb: dict, model):
    """Section 19 of the notebook at once, in the namespace NB: returns the model to run the fast path on.

    A model whose weights fit in STACK_MAX_BYTES in its compute dtype is stacked (nb["stacked"]) and gets all
    the fast functions; a bigger one keeps its weights in the file and gets the two that copy nothing. NB's
    functions are replaced (nb["swap_in"]): give it a namespace of its own, not one the plain path still needs.
    """
    keep_lesson_functions(nb)
    itemsize = torch.tensor([], dtype=model.dtype).element_size()
    stack = count_parameters(model.checkpoint) * itemsize <= nb["STACK_MAX_BYTES"]
    nb["swap_in"]({plain: nb[fast] for plain, fast in FAST_FUNCTIONS.items() if stack or plain not in STACKING})
    return nb["stacked"](model) if stack else model


def use_decode_step(nb: dict, model, weights: str = "float32", compiled: bool = False):
    """Section 19's later steps, in the namespace NB: returns a stacked copy of MODEL with its matrices in WEIGHTS.

    WEIGHTS: "float32" (the compute dtype), "bfloat16" (bf16 weights, float32 activations) or "int8"
    (nb["quantize_packed"]: one scale per output row, four int8 weights to a word, speed-up 7). forward_fixed
    (decode_layer, a fixed-size cache) and linear_packed are swapped in; COMPILED also puts
    torch.compile(decode_layer) and torch.compile(final_logits) in place, as the notebook does with COMPILE = True
    (the first decode step compiles). Give it a namespace of its own (load_notebook_functions()), on which
    use_fast_path has not run: it runs it.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, not {weights!r}")
    model = use_fast_path(nb, model)
    if not isinstance(model, nb["StackedModel"]):
        raise ValueError("the decode step's bf16 and int8 copies need a model small enough to stack (STACK_MAX_BYTES)")
    matrix = {"float32": None, "bfloat16": lambda w: w.to(model.device, torch.bfloat16),
              "int8": nb["quantize_packed"]}[weights]
    if matrix is not None:
        model = nb["stacked"](model, matrix)
    nb["swap_in"]({plain: nb[fast] for plain, fast in DECODE_FUNCTIONS.items()})
    if compiled:
        nb["swap_in"]({name: torch.compile(nb[name]) for name in COMPILED})
    return model


def use_stored_weights(nb: dict, model, compiled: bool = False):
    """Section 19's decode step for a model too big to copy (the 8B on a laptop), in the namespace NB.

    Nothing is stacked or copied: every matrix stays in the memory-mapped file as stored (bf16, or the
    (q, scale) pairs of an int8 checkpoint written by quantize_checkpoint.py, read with Int8Checkpoint.int8,
    never dequantized whole) and is converted as a product reads it, into activations of MODEL's dtype (float32
    for "bf16 weights, float32 activations"). The notebook's fused attention, forward_fixed and linear_packed are
    swapped in: a packed file's int8 matrices (quantize_checkpoint.py's default layout) are its speed-up 7 words
    as they lie in the file, viewed as float32 without a copy; a plain file's (q, scale) pairs go to linear_int8
    (packing them into words would copy the whole model). COMPILED also compiles decode_layer and final_logits.
    The int8 pairs' layer_weights and output_matrix are the two functions here that the notebook does not have:
    its int8 step quantizes a stacked copy instead, which the 8B has no memory for.
    """
    keep_lesson_functions(nb)
    if getattr(model.checkpoint, "quantization", None) == PACKED and sys.byteorder != "little":
        raise ValueError("a packed int8 file's bytes are 32-bit words on a little-endian CPU only: write this "
                         "model with quantize_checkpoint.py --layout plain")
    swaps = {"attention_heads": nb["attention_heads_fused"], "forward": nb["forward_fixed"], "linear": nb["linear_packed"]}
    if isinstance(model.checkpoint, Int8Checkpoint):
        def stored_int8(model, name: str) -> tuple[Tensor, Tensor] | None:  # (q or its words, scale), as stored
            q, scale = model.checkpoint.int8(name) or (None, None)
            if q is None or model.checkpoint.quantization != PACKED:
                return q if q is None else (q, scale)
            return q.view(torch.float32), scale  # the file's bytes as words: no copy

        def int8_layer_weights(model, i: int) -> dict:
            names = {short: f"layers.{i}.{name}" for short, name in LAYER_TENSORS.items()}
            return {short: stored_int8(model, name) or model.checkpoint[name].to(model.device, model.dtype)
                    for short, name in names.items()}  # matrices as (q, scale); norms in the compute dtype

        def int8_output_matrix(model):
            return stored_int8(model, "output.weight")  # quantize_checkpoint.py writes one for a tied model too

        swaps |= {"layer_weights": int8_layer_weights, "output_matrix": int8_output_matrix}
    nb["swap_in"](swaps)
    if compiled:
        nb["swap_in"]({name: torch.compile(nb[name]) for name in COMPILED})
    return model
