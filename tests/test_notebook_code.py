"""scripts/notebook_code.py: what tests and scripts read from the notebook is the notebook's code, complete."""

import dataclasses

import torch

from notebook_code import load_notebook_functions, notebook_source


def test_decorators_are_kept():
    nb = load_notebook_functions()
    assert dataclasses.is_dataclass(nb["Config"]) and dataclasses.is_dataclass(nb["Model"])
    x = torch.randn(3, 8)
    w = {"attention_norm": torch.ones(8), "ffn_norm": torch.ones(8), "wq": torch.randn(8, 8),
         "wk": torch.randn(4, 8), "wv": torch.randn(4, 8), "wo": torch.randn(8, 8),
         "w1": torch.randn(16, 8), "w2": torch.randn(8, 16), "w3": torch.randn(16, 8)}
    out = nb["transformer_layer"](x, w, nb["rope_frequencies"](4, 3, 10000.0),
                                  torch.full((3, 3), float("-inf")).triu(1), 2, 1, 1e-5)
    assert out.is_inference()  # @torch.inference_mode() came along


def test_only_definitions_imports_and_constants_are_kept():
    source = notebook_source()
    assert "def forward(" in source and "CHUNK_BYTES = 8 * 2**20" in source
    # nothing that loads a model or depends on the parameters cell runs
    for statement in ("checkpoint = load_checkpoint(", "MODEL_DIR = None", "plt.show()", "print("):
        assert statement not in "\n".join(line for line in source.splitlines() if not line.startswith(" "))


def test_the_benchmarks_fast_path_is_the_one_section_19_swaps_in():
    # notebook_code.use_fast_path (what scripts/benchmark.py times) names the same replacements as the
    # notebook's own swap_in({...}) calls, so that the benchmark measures what the notebook teaches.
    import ast

    import nbformat

    from notebook_code import COMPILED, DECODE_FUNCTIONS, FAST_FUNCTIONS, NOTEBOOK

    swapped = []  # (name, replacement) in the order the notebook swaps them; "compiled NAME" for torch.compile(NAME)
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "swap_in" and isinstance(node.args[0], ast.Dict):
                for key, value in zip(node.args[0].keys, node.args[0].values):
                    is_compile = isinstance(value, ast.Call) and ast.unparse(value.func) == "torch.compile"
                    swapped.append((key.value, f"compiled {value.args[0].id}" if is_compile else value.id))
    fast = [pair for pair in swapped if pair[0] in FAST_FUNCTIONS][:len(FAST_FUNCTIONS)]
    assert dict(fast) == FAST_FUNCTIONS
    later = dict(swapped[len(fast):])  # the last replacement of each name: what the decode step runs with
    assert {name: later[name] for name in DECODE_FUNCTIONS} == DECODE_FUNCTIONS
    assert all(later[name] == f"compiled {name}" for name in COMPILED)
