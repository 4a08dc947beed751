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
