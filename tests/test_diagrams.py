"""scripts/diagrams.py: every picture labels the sizes of the tensors it was given, and only those."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch

import diagrams
from llama3_files import Config

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    name: str
    T: int
    D: int
    H: int
    H_KV: int
    L: int
    F: int
    V: int
    p: float  # top-p, and the top probabilities that give a known number of kept tokens at that p
    top_probs: tuple[float, ...]
    kept: int

    @property
    def Dh(self) -> int:
        return self.D // self.H

    @property
    def N_REP(self) -> int:
        return self.H // self.H_KV

    @property
    def cfg(self) -> Config:
        return Config(dim=self.D, n_layers=self.L, n_heads=self.H, n_kv_heads=self.H_KV, vocab_size=self.V,
                      ffn_hidden=self.F, norm_eps=1e-5, rope_theta=500000.0, use_scaled_rope=False)


DEMO = Sizes("demo", T=5, D=576, H=9, H_KV=3, L=30, F=1536, V=49152, p=0.9, top_probs=(0.5, 0.3, 0.15), kept=3)
SMALL = Sizes("small", T=7, D=64, H=4, H_KV=2, L=3, F=160, V=300, p=0.75, top_probs=(0.3, 0.25, 0.2, 0.1), kept=4)


def llama3_8b() -> Sizes:
    cfg = Config.from_params(json.loads((REPO / "Meta-Llama-3-8B" / "params.json").read_text()))
    return Sizes("8B", T=17, D=cfg.dim, H=cfg.n_heads, H_KV=cfg.n_kv_heads, L=cfg.n_layers, F=cfg.ffn_hidden,
                 V=cfg.vocab_size, p=0.8, top_probs=(0.4, 0.2, 0.15, 0.1, 0.05), kept=4)


EIGHT_B = llama3_8b()
MAX_LEN_EXTRA, STEPS = 12, 3  # the KV cache: T + 12 rows, 3 decode steps drawn


def weight(*shape: int) -> torch.Tensor:
    """A checkpoint matrix: only its shape is drawn, so it can be a tensor without data (the 8B's are big)."""
    return torch.empty(*shape, device="meta")


def probs_with(top: tuple[float, ...], V: int) -> torch.Tensor:
    """V probabilities: `top` (shuffled among the rest), the remainder spread evenly over the others."""
    probs = torch.full((V,), (1 - sum(top)) / (V - len(top)), dtype=torch.float64)
    places = torch.randperm(V, generator=torch.Generator().manual_seed(0))[:len(top)]
    probs[places] = torch.tensor(top, dtype=torch.float64)
    return probs.float()


def chat_pieces(T_text: int) -> tuple[list[str], set[str]]:
    special = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}
    text = [" word"] * T_text
    pieces = ["<|begin_of_text|>", "<|start_header_id|>", "user", "<|end_header_id|>", "\n\n", *text, "<|eot_id|>",
              "<|start_header_id|>", "assistant", "<|end_header_id|>", "\n\n"]
    return pieces, special


def cases(sz: Sizes) -> dict[str, tuple]:
    """name -> (a function drawing that diagram for these sizes, the labels it must show)."""
    T, D, H, H_KV, Dh, L, F, V = sz.T, sz.D, sz.H, sz.H_KV, sz.Dh, sz.L, sz.F, sz.V
    g = torch.Generator().manual_seed(T)
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    ids = torch.randint(0, V, (T,), generator=g).tolist()
    pieces = ["<|begin_of_text|>"] + [f" w{i}" for i in range(T - 1)]
    scores = rand(T, T)
    mask = torch.full((T, T), float("-inf")).triu(1)
    masked = scores + mask
    angles = 3 * (500000.0 ** (-torch.arange(0, Dh, 2).float() / Dh))  # position 3
    before = rand(Dh)
    after = torch.view_as_real(torch.view_as_complex(before.reshape(-1, 2)) * torch.polar(torch.ones_like(angles),
                                                                                           angles)).flatten()
    chat, special = chat_pieces(T)
    return {
        "overview": (lambda: diagrams.overview(sz.cfg, T),
                     {"T": T, "V": V, "D": D, "L": L, "H": H, "H_KV": H_KV, "Dh": Dh, "F": F}),
        "tokens": (lambda: diagrams.tokens(pieces, ids), {"T": T}),
        "embedding_lookup": (lambda: diagrams.embedding_lookup(weight(V, D), ids, rand(T, D)),
                             {"V": V, "D": D, "T": T}),
        "embedding_lookup_shape": (lambda: diagrams.embedding_lookup((V, D), ids, rand(T, D)),
                                   {"V": V, "D": D, "T": T}),
        "rms_norm_step": (lambda: diagrams.rms_norm_step(rand(T, D), rand(D), rand(T, D)), {"D": D, "T": T}),
        "head_slice": (lambda: diagrams.head_slice(weight(H * Dh, D), H, 1),
                       {"H·Dh": H * Dh, "D": D, "H": H, "Dh": Dh}),
        "one_head_qkv": (lambda: diagrams.one_head_qkv(rand(T, D), rand(T, Dh), rand(T, Dh), rand(T, Dh)),
                         {"T": T, "D": D, "Dh": Dh}),
        "rope_pairs": (lambda: diagrams.rope_pairs(before, after, 3), {"Dh": Dh, "Dh/2": Dh // 2}),
        "scores_step": (lambda: diagrams.scores_step(rand(T, Dh), rand(T, Dh), scores), {"T": T, "Dh": Dh}),
        "mask_step": (lambda: diagrams.mask_step(scores, mask, masked), {"T": T}),
        "softmax_step": (lambda: diagrams.softmax_step(masked, masked.softmax(-1)), {"T": T}),
        "values_step": (lambda: diagrams.values_step(masked.softmax(-1), rand(T, Dh), rand(T, Dh)),
                        {"T": T, "Dh": Dh}),
        "gqa": (lambda: diagrams.gqa(H, H_KV), {"H": H, "H_KV": H_KV, "N_REP": sz.N_REP}),
        "heads_join": (lambda: diagrams.heads_join(rand(T, H, Dh), weight(D, H * Dh), rand(T, D), rand(T, D)),
                       {"T": T, "H": H, "Dh": Dh, "H·Dh": H * Dh, "D": D}),
        "swiglu": (lambda: diagrams.swiglu(rand(T, D), weight(F, D), weight(F, D), weight(D, F), rand(T, D)),
                   {"T": T, "D": D, "F": F}),
        "layer_block": (lambda: diagrams.layer_block(sz.cfg, T),
                        {"L": L, "T": T, "D": D, "H": H, "H_KV": H_KV, "F": F}),
        "final_output": (lambda: diagrams.final_output(rand(T, D), rand(D), weight(V, D), rand(V)),
                         {"T": T, "D": D, "V": V}),
        "final_output_rows": (lambda: diagrams.final_output(rand(T, D), rand(D), (V, D), rand(T, V)),
                              {"T": T, "D": D, "V": V}),
        "kv_cache": (lambda: diagrams.kv_cache(sz.cfg, T, STEPS, T + MAX_LEN_EXTRA),
                     {"L": L, "T_max": T + MAX_LEN_EXTRA, "H_KV": H_KV, "Dh": Dh, "T": T}),
        "top_p": (lambda: diagrams.top_p(probs_with(sz.top_probs, V), sz.p), {"V": V, "p": sz.p, "kept": sz.kept}),
        "chat_layout": (lambda: diagrams.chat_layout(chat, special), {"T": len(chat)}),
    }


NAMES = list(cases(SMALL))


@pytest.fixture(autouse=True)
def figures_returned(monkeypatch):
    monkeypatch.setattr(diagrams, "DISPLAY", False)


@pytest.mark.parametrize("sizes", [DEMO, SMALL, EIGHT_B], ids=lambda s: s.name)
@pytest.mark.parametrize("name", NAMES)
def test_a_diagram_labels_exactly_the_sizes_of_its_tensors(name, sizes):
    draw, expected = cases(sizes)[name]
    fig = draw()
    assert diagrams.labels_of(fig) == expected
    assert fig.diagram == {"name": name.removesuffix("_shape").removesuffix("_rows"), "labels": expected}
    assert fig.get_figwidth() <= diagrams.MAX_WIDTH


def test_the_8b_and_the_demo_model_share_no_number():
    # a label copied from one model (a constant in the drawing code) would show the same number for both
    for name in NAMES:
        eight_b, demo = (cases(s)[name][0]().diagram["labels"] for s in (EIGHT_B, DEMO))
        assert eight_b.keys() == demo.keys(), name
        assert all(eight_b[sym] != demo[sym] for sym in eight_b), (name, eight_b, demo)
    assert (EIGHT_B.T, EIGHT_B.D, EIGHT_B.H, EIGHT_B.H_KV, EIGHT_B.Dh, EIGHT_B.N_REP, EIGHT_B.L, EIGHT_B.F,
            EIGHT_B.V) == (17, 4096, 32, 8, 128, 4, 32, 14336, 128256)
    assert diagrams.overview(EIGHT_B.cfg, 17).diagram["labels"] == {
        "T": 17, "V": 128256, "D": 4096, "L": 32, "H": 32, "H_KV": 8, "Dh": 128, "F": 14336}


def test_labels_of_reads_compound_symbols_and_ignores_other_text():
    sheet = diagrams._Sheet("t")
    for text in ["H·Dh = 576", "Dh/2 = 32", "H_KV = 8 × Dh = 128", "p = 0.9", "q = 1e-09", "RMS(x) ≈ 0.51",
                 "position 3", "m=3", "scores = q @ kᵀ"]:
        sheet.text(0, 0, text)
    assert diagrams.labels_of(sheet.fig) == {"H·Dh": 576, "Dh/2": 32, "H_KV": 8, "Dh": 128, "p": 0.9, "q": 1e-9}


def test_a_label_that_disagrees_with_the_sizes_is_caught():
    sheet = diagrams._Sheet("wrong")
    sheet.matrix(diagrams._m("x", (5, 576), ("T", "D"), "activation"), 0, 0)
    with pytest.raises(diagrams.DiagramError, match="sizes are"):
        diagrams._finish(sheet.fig, "wrong", {"T": 5, "D": 577})  # declared from a shape, drawn otherwise
    with pytest.raises(diagrams.DiagramError):
        diagrams._finish(sheet.fig, "wrong", {"T": 5, "D": 576, "H": 9})  # declared, never drawn
    assert diagrams._finish(sheet.fig, "right", {"T": 5, "D": 576}).diagram["labels"] == {"T": 5, "D": 576}


def test_tensors_that_do_not_fit_together_are_caught():
    x = torch.randn(5, 576)
    with pytest.raises(diagrams.DiagramError, match="Dh is drawn as both 64 and 32"):
        diagrams.one_head_qkv(x, torch.randn(5, 64), torch.randn(5, 32), torch.randn(5, 64))
    with pytest.raises(diagrams.DiagramError, match="D is drawn as both"):
        diagrams.embedding_lookup((49152, 576), [1, 2], torch.randn(2, 64))


def missing_glyphs(draw) -> list[str]:
    """matplotlib's "Glyph ... missing from font" warnings while drawing a figure."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw().canvas.draw()
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


@pytest.mark.parametrize("sizes", [SMALL, EIGHT_B], ids=lambda s: s.name)
def test_no_diagram_draws_a_character_its_font_lacks(sizes):
    for name, (draw, _) in cases(sizes).items():
        assert missing_glyphs(draw) == [], name
    # pieces of text the font cannot draw are escaped (the notebook's prompt may be Chinese)
    assert missing_glyphs(lambda: diagrams.tokens(["東京", "🦙", " naïve", "\n", "\ufffd"], [1, 2, 3, 4, 5])) == []
    assert missing_glyphs(lambda: diagrams.chat_layout(["<|im_start|>", "東京"], {"<|im_start|>"})) == []


def test_the_glyph_check_sees_a_missing_glyph():
    def chinese():
        sheet = diagrams._Sheet("x")
        sheet.text(0, 0, "東京")
        return sheet.fig

    assert len(missing_glyphs(chinese)) == 2


def test_in_a_kernel_the_picture_is_displayed_with_its_sizes_and_nothing_returned(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(diagrams, "DISPLAY", True)
    monkeypatch.setattr(diagrams, "_in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    assert diagrams.gqa(9, 3) is None
    [(image, kw)] = shown
    assert kw == {"metadata": {"diagram": {"name": "gqa", "labels": {"H": 9, "H_KV": 3, "N_REP": 3}}}}
    assert isinstance(image, IPython.display.Image) and image.data.startswith(b"\x89PNG")
    monkeypatch.setattr(diagrams, "DISPLAY", False)  # the switch the tests use: a Figure, even in a kernel
    assert diagrams.gqa(9, 3).diagram["labels"]["H"] == 9


def test_outside_a_kernel_a_figure_is_returned():
    assert not diagrams._in_kernel()
    assert isinstance(diagrams.gqa(4, 2), matplotlib.figure.Figure)


def test_diagrams_in_outputs_reads_the_metadata_of_display_data():
    diagram = {"name": "gqa", "labels": {"H": 9}}
    outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n"),
               nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"}, metadata={"diagram": diagram}),
               nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"}, metadata={})]
    assert diagrams.diagrams_in_outputs(outputs) == [diagram]


def test_the_metadata_lands_in_an_executed_notebook(tmp_path):
    # a real kernel: the figure is shown once (no "<Figure ...>" text), its sizes in the output's metadata
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r})\n%matplotlib inline\n"
        "import diagrams\ndiagrams.gqa(6, 2)"))
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"]
    assert set(outputs[0].data) == {"image/png", "text/plain"}
    assert diagrams.diagrams_in_outputs(outputs) == [{"name": "gqa", "labels": {"H": 6, "H_KV": 2, "N_REP": 3}}]


def test_long_token_lists_are_cut_and_a_chatml_prompt_works():
    fig = diagrams.tokens([f" w{i}" for i in range(40)], list(range(40)))
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    assert "…" in texts and "T = 40" in texts and " w39".replace(" ", "␣") not in texts
    special = {"<|im_start|>", "<|im_end|>"}
    pieces = ["<|im_start|>", "system", "\n", *[" x"] * 30, "<|im_end|>", "\n", "<|im_start|>", "user", "\n", " Hi",
              "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
    fig = diagrams.chat_layout(pieces, special)
    assert diagrams.labels_of(fig) == {"T": len(pieces)}
    assert sum(t.get_text() == "<|im_start|>" for t in fig.findobj(matplotlib.text.Text)) == 3


def test_top_p_keeps_what_metas_rule_keeps():
    probs = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15])
    for p, kept in [(0.6, 2), (0.71, 3), (1e-9, 1), (1.0, 5)]:
        assert diagrams.top_p(probs, p).diagram["labels"]["kept"] == kept, p


def test_the_scale_keeps_every_size_visible_and_in_order():
    lengths = [diagrams.scale(n) for n in (1, 5, 17, 64, 128, 576, 4096, 14336, 128256)]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    assert lengths[-1] / lengths[1] < 10 and math.isclose(diagrams.scale(4096), 12.0, rel_tol=1e-3)


def test_a_long_prompt_gets_a_schematic_mask_and_still_its_sizes():
    T = 40
    scores = torch.randn(T, T)
    mask = torch.full((T, T), float("-inf")).triu(1)
    fig = diagrams.mask_step(scores, mask, scores + mask)
    assert fig.diagram["labels"] == diagrams.labels_of(fig) == {"T": 40}
    assert diagrams.softmax_step(scores + mask, (scores + mask).softmax(-1)).diagram["labels"] == {"T": 40}
