"""Pictures of the lesson's steps, drawn from the real tensors: a picture cannot disagree with the code.

Each function draws one step of llama3-from-scratch.ipynb. It is handed the tensors of that step (or the `Config`)
and reads every size it draws from their shapes, so the pictures change when the reader changes the prompt or the
model, and they show the demo model's sizes (T = 5, D = 576, ...) or the 8B's (T = 17, D = 4096, ...) as they are.

Usage:
    import diagrams
    diagrams.scores_step(q_rot, k_rot, scores)   # in a notebook: shows the picture, returns None
    fig = diagrams.overview(cfg, T)               # elsewhere: returns a matplotlib Figure (fig.savefig(...))

    python scripts/diagrams.py Meta-Llama-3-8B/params.json scripts/overview-llama3-8b.png --tokens 17
                                                  # the overview picture at the top of the README

The scale. A tensor's edge of n numbers is drawn scale(n) = log2(1 + n) units long (UNIT inches each):
    T = 5 -> 2.6   Dh = 64 -> 6.0   D = 576 -> 9.2   D = 4096 -> 12.0   F = 14336 -> 13.8   V = 128256 -> 17.0
Longer edges are always drawn longer, and V fits on the same page as T. The same function places the rows of the
embedding table that the ids pick, and the pairs of a head in rope_pairs. (Small (T, T) grids whose cells show
values are drawn at twice the scale, so their cells can be seen; every grid in such a figure is.)

The labels. Every edge carries "SYM = N", the symbol of the notebook's table of sizes and this run's number
(`T = 5`, `D = 576`, `H·Dh = 576`, `Dh/2 = 32`). labels_of(fig) reads them back from the text the figure really
draws; _finish checks that they are the sizes the function declared, and labels_of refuses a figure that labels one
symbol with two numbers (tensors that do not fit together). No other text uses the "SYM = N" form.
Titles are short formulas (`scores = q @ kᵀ / √Dh`); other texts are symbols and numbers, a word where needed
(`view`, `residual`), so the same pictures serve the Chinese edition of the notebook. They only
use characters the default font, DejaVu Sans, has; pieces of text from the tokenizer that it lacks are escaped.

Colours: COLORS["activation"] (blue) for what flows through the model, COLORS["weight"] (orange) for the
checkpoint's matrices, COLORS["result"] (green) for what the step computes.

In a notebook. Inside a Jupyter kernel a function shows the picture as a PNG and returns None (so a cell ending with
it shows only the picture). The PNG's output carries the figure's sizes: in the saved .ipynb they land in the
output of type "display_data", at output["metadata"]["diagram"] == {"name": ..., "labels": {SYM: N, ...}}
(checked with jupyter nbconvert --execute on a throwaway notebook). diagrams_in_outputs(cell.outputs) reads them back.
Set DISPLAY = False to get Figures in a kernel too.
"""

from __future__ import annotations

import argparse
import io
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from matplotlib import font_manager, ft2font
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon, Rectangle
from matplotlib.text import Text
from torch import Tensor

__all__ = ["COLORS", "DISPLAY", "DiagramError", "scale", "labels_of", "diagrams_in_outputs", "png_bytes",
           "overview", "tokens", "embedding_lookup", "rms_norm_step", "head_slice", "one_head_qkv", "rope_pairs",
           "scores_step", "mask_step", "softmax_step", "values_step", "gqa", "heads_join", "swiglu", "layer_block",
           "final_output", "kv_cache", "top_p", "chat_layout"]

DISPLAY = True  # False: return Figures even inside a Jupyter kernel (tests set it)

COLORS = {"activation": "#a6cee3", "weight": "#fdbf6f", "result": "#b2df8a"}  # fills, one per kind
EDGES = {"activation": "#1f78b4", "weight": "#e66101", "result": "#33a02c"}  # the same kinds, darker: outlines
MASKED = "#4d4d4d"  # the -inf cells of the causal mask
SPECIAL = "#cab2d6"  # special tokens of a chat prompt
NEUTRAL = "#f0f0f0"  # operations drawn as boxes (a layer, RMSNorm, attention), and dropped tokens

UNIT = 0.13  # inches per drawn unit
DPI = 110  # of the PNG shown in the notebook: labels legible on a projected slide, files still small
MAX_WIDTH = 10.0  # inches
NAME_SIZE, LABEL_SIZE, OP_SIZE, TITLE_SIZE = 9, 7.5, 12, 10  # points
GAP = 0.7  # units between neighbours in a row
TOKENS_SHOWN, TEXT_RUN = 12, 8  # tokens(): boxes at most; chat_layout(): longer runs of text are cut

LABEL = re.compile(r"(?<![\w·/])([A-Za-z][A-Za-z0-9_]*(?:[·/][A-Za-z0-9_]+)*) = (\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w.])")


class DiagramError(AssertionError):
    """A figure's drawn labels disagree with its sizes, or with each other."""


def scale(n: int) -> float:
    """The drawn length, in units, of an edge of n numbers: log2(1 + n)."""
    return math.log2(1 + n)


# --------------------------------------------------------------------------- labels and display

def labels_of(fig: Figure) -> dict[str, int | float]:
    """Every "SYM = N" that the figure draws, read from its Text artists; one symbol with two numbers is an error."""
    found: dict[str, int | float] = {}
    for text in fig.findobj(Text):
        for sym, number in LABEL.findall(text.get_text()):
            value = int(number) if number.isdigit() else float(number)  # p = 0.9, p = 1e-09
            if found.setdefault(sym, value) != value:
                raise DiagramError(f"{sym} is drawn as both {found[sym]} and {value}: do the tensors fit together?")
    return found


def diagrams_in_outputs(cell_outputs: Sequence[dict]) -> list[dict]:
    """The {"name": ..., "labels": {...}} of every diagram among a notebook cell's outputs (nbformat dicts)."""
    return [output["metadata"]["diagram"] for output in cell_outputs
            if output.get("output_type") == "display_data" and "diagram" in output.get("metadata", {})]


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return hasattr(get_ipython(), "kernel")  # a terminal IPython has no kernel: it gets the Figure


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08, facecolor="white")
    return buffer.getvalue()


def _finish(fig: Figure, name: str, labels: dict[str, int | float]) -> Figure | None:
    """Checks the drawn labels against the declared ones, records them, then shows (kernel) or returns the Figure."""
    drawn = labels_of(fig)
    if drawn != labels:
        raise DiagramError(f"{name}: the figure draws {drawn}, but its tensors' sizes are {labels}")
    fig.diagram = {"name": name, "labels": dict(labels)}
    if not (DISPLAY and _in_kernel()):
        return fig
    from IPython.display import Image, display
    # The Figure was made without pyplot, so the inline backend does not show it a second time; the metadata
    # lands in the saved notebook at output["metadata"]["diagram"], where the notebook's tests read it.
    display(Image(data=png_bytes(fig)), metadata={"diagram": fig.diagram})
    fig.clear()
    return None


@cache
def _font_codepoints() -> frozenset[int]:
    path = font_manager.findfont(font_manager.FontProperties())
    return frozenset(ft2font.FT2Font(path).get_charmap())


def _visible(piece: str, limit: int = 10) -> str:
    """A tokenizer piece, drawable: spaces and newlines shown, characters the font lacks escaped, cut to limit."""
    shown = "".join("␣" if c == " " else "↵" if c == "\n" else "⇥" if c == "\t"
                    else c if c.isprintable() and ord(c) in _font_codepoints() else f"\\u{ord(c):04x}"
                    for c in piece) or "∅"
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


# --------------------------------------------------------------------------- drawing primitives

@dataclass(frozen=True)
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def xc(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def yc(self) -> float:
        return (self.y0 + self.y1) / 2


@dataclass(frozen=True)
class _M:
    """A tensor to draw: its name, shape (rows, cols) or (n,), the symbols of its edges, its kind."""
    name: str
    shape: tuple[int, ...]
    syms: tuple[str | None, ...]
    kind: str
    col_text: str | None = None  # instead of "SYM = N" on the columns edge (a compound like "H_KV = 8 × Dh = 128")


def _m(name: str, shape, syms: tuple[str | None, ...], kind: str, col_text: str | None = None) -> _M:
    shape = tuple(int(n) for n in shape)
    if len(shape) != len(syms) or len(shape) not in (1, 2):
        raise ValueError(f"{name}: a shape {shape} cannot be drawn with the symbols {syms}")
    return _M(name, shape, syms, kind, col_text)


def _text_size(text: str, size: float) -> tuple[float, float]:
    """Width and height of a text, in units (DejaVu Sans averages about 0.6 em a character)."""
    lines = text.split("\n")
    return (max(map(len, lines)) * 0.6 * size / 72 / UNIT, len(lines) * 1.25 * size / 72 / UNIT)


def _fitting_size(text: str, width: float, height: float, size: float = NAME_SIZE) -> float:
    """The largest font size, at most `size` and at least 5, at which text fits in a box of width x height units."""
    w, h = _text_size(text, 1)
    return max(5.0, min(size, 0.92 * width / w, 0.95 * height / h))


def _shade(values: np.ndarray, kind: str) -> np.ndarray:
    """Values in 0..1 as RGBA: white to the kind's dark colour."""
    return LinearSegmentedColormap.from_list(kind, ["white", EDGES.get(kind, "#777777")])(values)


class _Sheet:
    """One figure being drawn: one frameless axes in units (see scale), grown to fit what is drawn."""

    def __init__(self, title: str):
        self.fig = Figure()
        FigureCanvasAgg(self.fig)  # renders without pyplot: fig.canvas.draw() works and nothing is shown twice
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()
        self.title = title
        self.extent = [math.inf, math.inf, -math.inf, -math.inf]

    def _grow(self, x0: float, y0: float, x1: float, y1: float) -> None:
        e = self.extent
        self.extent = [min(e[0], x0), min(e[1], y0), max(e[2], x1), max(e[3], y1)]

    def text(self, x: float, y: float, text: str, size: float = LABEL_SIZE, ha: str = "center", va: str = "center",
             rotation: float = 0, **style) -> Text:
        artist = self.ax.text(x, y, text, fontsize=size, ha=ha, va=va, rotation=rotation, parse_math=False,
                              clip_on=False, zorder=5, **style)
        w, h = _text_size(text, size)
        if rotation:
            w, h = h, w
        x0 = x - {"left": 0, "center": w / 2, "right": w}[ha]
        y0 = y - {"bottom": 0, "baseline": 0, "center": h / 2, "top": h}[va]
        self._grow(x0, y0, x0 + w, y0 + h)
        return artist

    def rect(self, x0: float, y0: float, w: float, h: float, face, edge, lw: float = 1.0, **style) -> _Box:
        self.ax.add_patch(Rectangle((x0, y0), w, h, facecolor=face, edgecolor=edge, lw=lw, **style))
        self._grow(x0, y0, x0 + w, y0 + h)
        return _Box(x0, y0, x0 + w, y0 + h)

    def arrow(self, start: tuple[float, float], end: tuple[float, float], color: str = "#555555", lw: float = 1.0,
              **style) -> None:
        self.ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color=color, lw=lw,
                                          shrinkA=0, shrinkB=0, zorder=4, **style))
        self._grow(min(start[0], end[0]), min(start[1], end[1]), max(start[0], end[0]), max(start[1], end[1]))

    def line(self, xs: Sequence[float], ys: Sequence[float], color: str = "#555555", lw: float = 1.0, **style):
        self.ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="butt", **{"zorder": 4, **style})
        self._grow(min(xs), min(ys), max(xs), max(ys))

    def op(self, x0: float, yc: float, text: str, size: float = OP_SIZE) -> float:
        """An operation between tensors ("@", "→", "softmax", ...); returns where the next thing starts."""
        if len(text) > 2:
            size = min(size, 10)  # a word reads well smaller than a symbol
        w = _text_size(text, size)[0]
        self.text(x0 + w / 2, yc, text, size=size, color="#222222")
        return x0 + w

    def opbox(self, x0: float, yc: float, text: str, size: float = NAME_SIZE) -> _Box:
        """An operation drawn as a box (RMSNorm, attention, SwiGLU), for the block diagrams."""
        w, h = _text_size(text, size)
        w, h = w + 1.2, h + 1.0
        self.ax.add_patch(FancyBboxPatch((x0, yc - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.4",
                                         facecolor=NEUTRAL, edgecolor="#777777", lw=1))
        self.text(x0 + w / 2, yc, text, size=size)
        self._grow(x0, yc - h / 2, x0 + w, yc + h / 2)
        return _Box(x0, yc - h / 2, x0 + w, yc + h / 2)

    def plus(self, xc: float, yc: float, r: float = 0.8) -> _Box:
        self.ax.add_patch(Circle((xc, yc), r, facecolor="white", edgecolor="#555555", lw=1))
        self.text(xc, yc, "+", size=OP_SIZE)
        return _Box(xc - r, yc - r, xc + r, yc + r)

    def labels_around(self, box: _Box, row_text: str | None, col_text: str | None) -> None:
        """The edge labels: columns above the box, rows turned along its left edge."""
        if col_text:
            self.text(box.xc, box.y1 + 0.3, col_text, va="bottom")
        if row_text:
            self.text(box.x0 - 0.3, box.yc, row_text, ha="right", rotation=90)

    def matrix(self, m: _M, x0: float, yc: float, name_below: bool = False, rows_right: bool = False) -> _Box:
        """A tensor as a rectangle on the compressed scale: its name inside, "SYM = N" on its edges."""
        cols, rows = m.shape[-1], m.shape[0] if len(m.shape) == 2 else None
        w, h = scale(cols), scale(rows) if rows is not None else 1.0  # a vector: one row high
        box = self.rect(x0, yc - h / 2, w, h, COLORS[m.kind], EDGES[m.kind])
        if name_below or _fitting_size(m.name, w, h) < 6.5:  # too small a box, or the rows inside matter more
            self.text(box.xc, box.y0 - 0.4, m.name, size=NAME_SIZE, va="top")
        else:
            backing = {"boxstyle": "square,pad=0.1", "facecolor": COLORS[m.kind], "edgecolor": "none"}
            self.text(box.xc, yc, m.name, size=_fitting_size(m.name, w, h),
                      bbox=backing if rows is not None else None)  # stripes drawn over it leave it readable
        col_text = m.col_text or (f"{m.syms[-1]} = {cols}" if m.syms[-1] else None)
        row_text = f"{m.syms[0]} = {rows}" if rows is not None and m.syms[0] else None
        self.labels_around(box, None if rows_right else row_text, col_text)
        if rows_right and row_text:  # arrows come in on the left
            self.text(box.x1 + 0.3, box.yc, row_text, ha="left", rotation=90)
        return box

    def wrap(self, start: tuple[float, float], target: _Box, y: float) -> None:
        """From the end of one row to the next row's first tensor: right, down to y, left, into its top."""
        x0, y0 = start
        x1 = target.x0 + 0.8  # left of the columns label
        self.line([x0, x0 + 1.2, x0 + 1.2, x1, x1], [y0, y0, y, y, target.y1 + 1.0])
        self.arrow((x1, target.y1 + 1.0), (x1, target.y1))

    def row(self, items: Sequence[_M | str], x0: float = 0.0, yc: float = 0.0) -> tuple[list[_Box], float]:
        """Tensors and operations left to right, centred on yc; returns the tensors' boxes and the end."""
        boxes, x = [], x0
        for item in items:
            if isinstance(item, str):
                x = self.op(x + GAP, yc, item)
            else:
                x += GAP + (1.3 if len(item.shape) == 2 and item.syms[0] else 0)  # room for the rows label
                boxes.append(self.matrix(item, x, yc))
                x = boxes[-1].x1
        return boxes, x

    def stack(self, x0: float, yc: float, n: int, n_sym: str, m: _M, highlight: int | None = None,
              dividers: bool = False) -> _Box:
        """n equal slabs m, one behind the other (a (n, rows, cols) tensor); slab `highlight` in the result colour."""
        rows, cols = m.shape
        w, h = scale(cols), scale(rows)
        step = min(0.45, 4.0 / n)  # how far each slab behind is shifted up and right
        for i in reversed(range(n)):  # the back slab first, slab 0 in front
            hit = i == highlight
            see_through = highlight is not None and i < highlight  # in front of the highlighted slab: outlines
            self.rect(x0 + i * step, yc - h / 2 + i * step, w, h,
                      "none" if see_through else COLORS["result" if hit else m.kind],
                      EDGES["result" if hit else m.kind], lw=1.6 if hit else 0.6)
        front = _Box(x0, yc - h / 2, x0 + w, yc + h / 2)
        self.text(front.xc, front.yc, m.name, size=_fitting_size(m.name, w, h))
        self.labels_around(front, f"{m.syms[0]} = {rows}", None)
        self.text(front.xc, front.y0 - 0.3, f"{m.syms[1]} = {cols}", va="top")
        back = _Box(x0 + (n - 1) * step, front.y0 + (n - 1) * step, front.x1 + (n - 1) * step,
                    front.y1 + (n - 1) * step)
        self.text(back.x1 + 0.3, back.y1, f"{n_sym} = {n}", ha="left", va="bottom")
        return _Box(front.x0, front.y0, back.x1, back.y1)

    def grid(self, values: Tensor, x0: float, yc: float, name: str, kind: str, syms=("T", "T"),
             absolute: bool = False, inf_key: bool = False) -> _Box:
        """A small matrix whose cells show its values as shading; -inf cells dark. Drawn at twice the scale."""
        values = values.detach().float().cpu()
        rows, cols = values.shape
        w, h = 2 * scale(cols), 2 * scale(rows)
        finite = torch.isfinite(values)
        if absolute:  # probabilities: 0 is white, 1 the darkest
            level = values.clamp(0, 1)
        else:
            lo, hi = (values[finite].min(), values[finite].max()) if finite.any() else (0, 1)
            level = (values - lo) / max(float(hi - lo), 1e-12)
        rgba = _shade(level.where(finite, 0).numpy(), kind)
        rgba[~finite.numpy()] = to_rgba(MASKED)
        self.ax.imshow(rgba, extent=(x0, x0 + w, yc - h / 2, yc + h / 2), interpolation="nearest", aspect="auto",
                       zorder=2)
        box = self.rect(x0, yc - h / 2, w, h, "none", EDGES.get(kind, "#777777"), lw=1.2, zorder=3)
        cell_w, cell_h = w / cols, h / rows
        if rows <= 24 and cols <= 24:  # thin white lines between the cells
            for i in range(1, cols):
                self.line([x0 + i * cell_w] * 2, [box.y0, box.y1], color="white", lw=0.4, zorder=2.5)
            for i in range(1, rows):
                self.line([x0, box.x1], [box.y1 - i * cell_h] * 2, color="white", lw=0.4, zorder=2.5)
        if min(cell_w, cell_h) >= 1.4:  # room to write -inf in the masked cells
            for r, c in (~finite).nonzero().tolist():
                self.text(x0 + (c + 0.5) * cell_w, box.y1 - (r + 0.5) * cell_h, "−∞", size=6, color="white")
        elif inf_key and not finite.all():  # else a key below
            self.rect(box.x0, box.y0 - 3.0, 0.8, 0.8, MASKED, "none")
            self.text(box.x0 + 1.1, box.y0 - 2.6, "−∞", ha="left")
        self.text(box.xc, box.y0 - 0.3, name, size=NAME_SIZE, va="top")
        self.labels_around(box, f"{syms[0]} = {rows}", f"{syms[1]} = {cols}")
        return box

    def finish(self, name: str, labels: dict[str, int | float]) -> Figure | None:
        """Title on top, limits and figure size from what was drawn (UNIT inches a unit), then _finish."""
        self.text(self.extent[0], self.extent[3] + 0.8, self.title, size=TITLE_SIZE, ha="left", va="bottom",
                  weight="bold")
        x0, y0, x1, y1 = self.extent
        margin = 0.5
        self.ax.set_xlim(x0 - margin, x1 + margin)
        self.ax.set_ylim(y0 - margin, y1 + margin)
        width, height = (x1 - x0 + 2 * margin) * UNIT, (y1 - y0 + 2 * margin) * UNIT
        shrink = min(1.0, MAX_WIDTH / width)  # a very long row: the same picture, smaller
        self.fig.set_size_inches(width * shrink, height * shrink)
        return _finish(self.fig, name, labels)


def _shape(t, ndim: int, what: str) -> tuple[int, ...]:
    shape = tuple(int(n) for n in (t if isinstance(t, (tuple, list, torch.Size)) else t.shape))
    if len(shape) != ndim:
        raise ValueError(f"{what} must have {ndim} dimension(s), got shape {shape}")
    return shape


def _row0(t: Tensor, what: str) -> tuple[Tensor, str]:
    """A vector, or row 0 of a matrix (named so in the picture)."""
    return (t, what) if t.ndim == 1 else (t[0], f"{what}[0]")


# --------------------------------------------------------------------------- the model as a whole

def overview(cfg, T: int | None) -> Figure | None:
    """ids (T) → embedding (V, D) → L × [the layer] → RMSNorm → output (V, D) → logits (T, V).

    T None: the prompt is not known yet; its edges are drawn at T = 8 and labelled "T" alone, with no number.
    """
    D, V, L, H, H_KV, Dh, F = (cfg.dim, cfg.vocab_size, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                               cfg.ffn_hidden)
    t_sym, t_len = ("T", T) if T is not None else (None, 8)  # None: no "T = N" label
    s = _Sheet("Llama 3")
    (_, table, h), _ = s.row([_m("ids", (t_len,), (t_sym,), "activation", None if T is not None else "T"), "→",
                                    _m("tok_embeddings", (V, D), ("V", "D"), "weight"), "→",
                                    _m("h", (t_len, D), (t_sym, "D"), "activation")])
    # the layers: one box, since all L layers have the same shapes
    top = table.y0 - 3.5
    layer = f"L = {L} × [ RMSNorm → attention → + → RMSNorm → SwiGLU → + ]"
    sizes = f"D = {D}    H = {H}    H_KV = {H_KV}    Dh = {Dh}    F = {F}"
    w = max(_text_size(layer, NAME_SIZE)[0], _text_size(sizes, LABEL_SIZE)[0]) + 2
    box = s.rect(0, top - 5, w, 5, NEUTRAL, "#777777")
    s.text(box.xc, top - 1.6, layer, size=NAME_SIZE)
    s.text(box.xc, top - 3.5, sizes)
    s.arrow((h.xc, h.y0), (h.xc, box.y1))
    # the head: final norm, output matrix, logits
    y3 = box.y0 - 3.5 - scale(V) / 2
    h_last = s.matrix(_m("h", (t_len, D), (t_sym, "D"), "activation"), 1.3, y3)
    s.arrow((h_last.xc, box.y0), (h_last.xc, h_last.y1 + 1.4))
    norm = s.opbox(h_last.x1 + 1.5, y3, "RMSNorm")
    s.arrow((h_last.x1, y3), (norm.x0, y3))
    s.row(["@ ·ᵀ", _m("output", (V, D), ("V", "D"), "weight"), "→", _m("logits", (t_len, V), (t_sym, "V"), "result")],
          x0=norm.x1, yc=y3)  # @ ·ᵀ: times the transpose of the matrix after it, like tok_embeddings (V, D)
    sizes = {"V": V, "D": D, "L": L, "H": H, "H_KV": H_KV, "Dh": Dh, "F": F}
    return s.finish("overview", sizes if T is None else {"T": T, **sizes})


def layer_block(cfg, T: int) -> Figure | None:
    """One layer: h → RMSNorm → attention → + → RMSNorm → SwiGLU → + → h', with its two residual paths."""
    D, H, H_KV, F, L = cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_hidden, cfg.n_layers
    s = _Sheet(f"layer (× L = {L})")
    h_in = s.matrix(_m("h", (T, D), ("T", "D"), "activation"), 1.3, 0)
    x, joins, branch_starts = h_in.x1, [], []
    for step in ["RMSNorm", "attention", "+", "RMSNorm", "SwiGLU", "+"]:
        if step == "RMSNorm":
            branch_starts.append(x + 1.0)  # the residual path leaves before the norm
        box = s.plus(x + 2.5, 0) if step == "+" else s.opbox(x + 1.7, 0, step)
        s.arrow((x, 0), (box.x0, 0))
        if step == "+":
            joins.append(box)
        elif step != "RMSNorm":
            sub = f"H = {H}, H_KV = {H_KV}" if step == "attention" else f"F = {F}"
            s.text(box.xc, box.y0 - 0.4, sub, va="top")
        x = box.x1
    h_out = s.matrix(_m("h'", (T, D), ("T", "D"), "result"), x + 3.5, 0)
    s.arrow((x, 0), (h_out.x0 - 1.4, 0))
    for start, join in zip(branch_starts, joins):  # residual: around the sub-block, added back
        y = 3.8
        s.line([start, start, join.xc], [0, y, y], color=EDGES["activation"], lw=1.3)
        s.arrow((join.xc, y), (join.xc, join.y1), color=EDGES["activation"], lw=1.3)
    s.text((branch_starts[0] + joins[0].xc) / 2, 4.3, "residual", va="bottom", color=EDGES["activation"])
    return s.finish("layer_block", {"L": L, "T": T, "D": D, "H": H, "H_KV": H_KV, "F": F})


# --------------------------------------------------------------------------- tokens and embeddings

def _token_boxes(s: _Sheet, shown: list[str], y: float, colors: list[str], x0: float = 0.0,
                 below: list[str] | None = None, width: float = 64.0) -> float:
    """Pieces as boxes left to right, wrapped at `width` units; optional text under each; returns the lowest y."""
    x, lowest = x0, y
    for i, piece in enumerate(shown):
        w = max(_text_size(piece, 8)[0], _text_size(below[i], 7)[0] if below else 0) + 0.9
        if x + w > x0 + width and x > x0:
            x, y = x0, y - (5.0 if below else 3.2)
        box = s.rect(x, y - 1, w, 2, colors[i], "#555555", lw=0.7)
        s.text(box.xc, box.yc, piece, size=8)
        if below:
            s.text(box.xc, box.y0 - 0.4, below[i], size=7, va="top", color="#333333")
        lowest, x = min(lowest, box.y0), x + w + 0.4
    return lowest


def tokens(pieces: list[str], ids: list[int]) -> Figure | None:
    """text → pieces → ids: one box per piece with its id below (the first ones if there are many)."""
    if len(pieces) != len(ids):
        raise ValueError(f"{len(pieces)} pieces but {len(ids)} ids")
    T = len(ids)
    s = _Sheet("text → pieces → ids")
    text = "".join(pieces).replace("\n", "↵")
    s.text(0, 3.0, '"' + _visible(text, 70).replace("␣", " ") + '"', size=9, ha="left")
    n = T if T <= TOKENS_SHOWN else TOKENS_SHOWN - 1
    shown = [_visible(p, 9) for p in pieces[:n]] + ([] if n == T else ["…"])
    below = [str(i) for i in ids[:n]] + ([] if n == T else ["…"])
    lowest = _token_boxes(s, shown, 0, [COLORS["activation"]] * len(shown), below=below)
    s.text(0, lowest - 2.6, f"T = {T}", size=NAME_SIZE, ha="left", va="top")
    return s.finish("tokens", {"T": T})


def embedding_lookup(table_shape_or_tensor, ids: list[int], h: Tensor) -> Figure | None:
    """The (V, D) table, the rows the ids pick highlighted (placed on the compressed scale), copied into h (T, D)."""
    V, D = _shape(table_shape_or_tensor, 2, "the embedding table")
    T, D_h = _shape(h, 2, "h")
    if len(ids) != T:
        raise ValueError(f"{len(ids)} ids but h has {T} rows")
    s = _Sheet("h = tok_embeddings[ids]")
    table = s.matrix(_m("tok_embeddings", (V, D), ("V", "D"), "weight"), 1.3, 0)
    out = s.matrix(_m("h", (T, D_h), ("T", "D"), "activation"), table.x1 + 9, 0, rows_right=True)
    row_h = (out.y1 - out.y0) / T
    for i, token in enumerate(ids):
        y = table.y1 - scale(token) * (table.y1 - table.y0) / scale(V)  # row `token`, on the compressed scale
        s.rect(table.x0, y - 0.15, table.x1 - table.x0, 0.3, EDGES["activation"], "none")
        s.arrow((table.x1, y), (out.x0, out.y1 - (i + 0.5) * row_h), color=EDGES["activation"], lw=0.6, alpha=0.7)
    listed = ", ".join(map(str, ids[:8])) + (", …" if T > 8 else "")
    s.text(table.x0, table.y0 - 1.0, f"ids [{listed}]", ha="left", va="top")
    return s.finish("embedding_lookup", {"V": V, "D": D, "T": T})  # h's D drawn apart: a misfit is caught


def rms_norm_step(x: Tensor, weight: Tensor, out: Tensor) -> Figure | None:
    """One row: x / RMS(x) ⊙ weight → out. Of (T, D) tensors, row 0 is drawn."""
    row, x_name = _row0(x, "x")
    out_row, out_name = _row0(out, "out")
    (D,) = _shape(weight, 1, "weight")
    rms = float(row.detach().float().pow(2).mean().sqrt())  # float32, like rms_norm
    s = _Sheet("RMSNorm")
    boxes, end = s.row([_m(x_name, row.shape, ("D",), "activation"), "/ RMS  ⊙",
                        _m("weight", (D,), ("D",), "weight"), "→", _m(out_name, out_row.shape, ("D",), "result")])
    s.text(0, -2.5, f"RMS({x_name}) = √mean({x_name}²) ≈ {rms:.4g}", size=NAME_SIZE, ha="left", va="top")
    labels = {"D": D}
    if x.ndim == 2:
        s.text(0, -4.5, f"x, out: (T = {x.shape[0]}, D = {x.shape[1]}) → row 0", ha="left", va="top")
        labels["T"] = int(x.shape[0])
    return s.finish("rms_norm_step", labels)


# --------------------------------------------------------------------------- one attention head by hand

def head_slice(w: Tensor, n_heads: int, head: int) -> Figure | None:
    """wq (H·Dh, D) viewed as (H, Dh, D): H slabs, slab `head` taken → (Dh, D)."""
    rows, D = _shape(w, 2, "w")
    if rows % n_heads or not 0 <= head < n_heads:
        raise ValueError(f"{rows} rows do not split into {n_heads} heads, or head {head} is not one of them")
    Dh = rows // n_heads
    s = _Sheet(f"wq_h = wq.view(H, Dh, D)[{head}]")
    (wq,), end = s.row([_m("wq", (rows, D), ("H·Dh", "D"), "weight"), "view"])
    stack = s.stack(end + GAP + 1.3, 0, n_heads, "H", _m("wq", (Dh, D), ("Dh", "D"), "weight"), highlight=head)
    x = s.op(stack.x1 + GAP, 0, f"[{head}]  →")
    s.matrix(_m("wq_h", (Dh, D), ("Dh", "D"), "result"), x + GAP + 1.3, 0)
    return s.finish("head_slice", {"H·Dh": rows, "D": D, "H": n_heads, "Dh": Dh})


def one_head_qkv(x: Tensor, q: Tensor, k: Tensor, v: Tensor) -> Figure | None:
    """x (T, D) @ wqᵀ (D, Dh) → q (T, Dh); the same for k and v."""
    T, D = _shape(x, 2, "x")
    s = _Sheet("q, k, v = x @ wᵀ")
    y = 0.0
    for name, t in (("q", q), ("k", k), ("v", v)):
        rows, Dh = _shape(t, 2, name)
        (_, w, _), _ = s.row([_m("x", (T, D), ("T", "D"), "activation"), "@",
                              _m(f"w{name}ᵀ", (D, Dh), ("D", "Dh"), "weight"), "→",
                              _m(name, (rows, Dh), ("T", "Dh"), "result")], yc=y)
        y = w.y0 - 2.5 - scale(D) / 2
    return s.finish("one_head_qkv", {"T": T, "D": D, "Dh": int(q.shape[1])})


def rope_pairs(before: Tensor, after: Tensor, position: int) -> Figure | None:
    """One token's Dh numbers of one head as Dh/2 pairs; a few pairs drawn before and after their rotation."""
    (Dh,) = _shape(before, 1, "before")
    if tuple(after.shape) != (Dh,) or Dh % 2:
        raise ValueError(f"before and after must be the same even length, got {tuple(before.shape)} and "
                         f"{tuple(after.shape)}")
    b, a = before.detach().float().reshape(-1, 2), after.detach().float().reshape(-1, 2)
    s = _Sheet(f"RoPE: position {position}")
    vec = s.matrix(_m("before", (Dh,), ("Dh",), "activation"), 0, 0)
    x = s.op(vec.x1 + GAP, 0, "view")
    pairs = s.matrix(_m("pairs", (Dh // 2, 2), ("Dh/2", None), "activation"), x + GAP + 1.3, 0, name_below=True)
    chosen = sorted({0, 1, Dh // 2 - 1})  # the two fastest pairs and the slowest
    R, gap = 3.2, 3.0
    for n, j in enumerate(chosen):
        cx, cy = pairs.x1 + 6 + R + n * (2 * R + gap), 0
        y = pairs.y1 - scale(j + 0.5) * (pairs.y1 - pairs.y0) / scale(Dh // 2)  # pair j, on the compressed scale
        s.rect(pairs.x0, y - 0.12, pairs.x1 - pairs.x0, 0.24, EDGES["activation"], "none")
        s.text(pairs.x1 + 0.3, y, str(j), ha="left", size=6.5)
        s.ax.add_patch(Circle((cx, cy), R, facecolor="none", edgecolor="#bbbbbb", lw=0.8))
        s.line([cx - R, cx + R], [cy, cy], color="#dddddd", lw=0.6)
        s.line([cx, cx], [cy - R, cy + R], color="#dddddd", lw=0.6)
        length = float(b[j].norm()) or 1.0  # a rotation keeps the length: draw every pair on the same circle
        for p, kind in ((b[j], "activation"), (a[j], "result")):
            s.arrow((cx, cy), (cx + R * float(p[0]) / length, cy + R * float(p[1]) / length),
                    color=EDGES[kind], lw=1.6)
        turn = (math.atan2(float(a[j][1]), float(a[j][0])) - math.atan2(float(b[j][1]), float(b[j][0]))) % (2 * math.pi)
        s.text(cx, cy - R - 0.4, f"pair {j}\n+{turn:.2f} rad", va="top")
    s.text(pairs.x1 + 6, pairs.y0 - 4.0, "before", color=EDGES["activation"], ha="left", va="top", size=NAME_SIZE)
    s.text(pairs.x1 + 12, pairs.y0 - 4.0, "after", color=EDGES["result"], ha="left", va="top", size=NAME_SIZE)
    return s.finish("rope_pairs", {"Dh": Dh, "Dh/2": Dh // 2})


def scores_step(q: Tensor, k: Tensor, scores: Tensor) -> Figure | None:
    """q (T, Dh) @ kᵀ (Dh, T) / √Dh → scores (T, T)."""
    T, Dh = _shape(q, 2, "q")
    S, Dh_k = _shape(k, 2, "k")
    s = _Sheet("scores = q @ kᵀ / √Dh")
    s.row([_m("q", (T, Dh), ("T", "Dh"), "activation"), "@", _m("kᵀ", (Dh_k, S), ("Dh", "T"), "activation"),
           "/ √Dh", "→", _m("scores", _shape(scores, 2, "scores"), ("T", "T"), "result")])
    return s.finish("scores_step", {"T": T, "Dh": Dh})


def _triangle(s: _Sheet, x0: float, yc: float, T: int, name: str, kind: str, masked: bool) -> _Box:
    """A (T, T) matrix too big for a grid: the -inf triangle above the diagonal drawn as one dark shape."""
    side = 2 * scale(T)
    box = s.rect(x0, yc - side / 2, side, side, COLORS[kind] if kind != "mask" else "white",
                 EDGES[kind] if kind != "mask" else "#777777")
    if masked:
        s.ax.add_patch(Polygon([(box.x0, box.y1), (box.x1, box.y1), (box.x1, box.y0)], facecolor=MASKED, zorder=2))
        s.text(box.x0 + side * 0.7, box.y0 + side * 0.7, "−∞", size=NAME_SIZE, color="white")
    if kind == "mask":
        s.text(box.x0 + side * 0.3, box.y0 + side * 0.3, "0", size=NAME_SIZE)
    s.text(box.xc, box.y0 - 0.3, name, size=NAME_SIZE, va="top")
    s.labels_around(box, f"T = {T}", f"T = {T}")
    return box


def mask_step(scores: Tensor, mask: Tensor, masked: Tensor) -> Figure | None:
    """scores (T, T) + mask (−∞ above the diagonal) → masked: a token sees only itself and the ones before."""
    T, S = _shape(scores, 2, "scores")
    s = _Sheet("masked = scores + mask")
    x = 1.3
    for i, (name, t, kind) in enumerate((("scores", scores, "activation"), ("mask", mask, "mask"),
                                         ("masked", masked, "result"))):
        if T <= 24 and S <= 24:
            box = s.grid(t, x, 0, name, kind, inf_key=kind == "mask")  # the mask: white 0s, dark -infs
        else:  # schematic: a grid of thousands of cells says less than the triangle
            box = _triangle(s, x, 0, int(t.shape[0]), name, kind, masked=kind != "activation")
        if i < 2:
            x = s.op(box.x1 + GAP, 0, "+" if i == 0 else "→") + GAP + 1.3
    return s.finish("mask_step", {"T": T})


def softmax_step(masked: Tensor, weights: Tensor) -> Figure | None:
    """masked scores (T, T) → softmax over each row → weights (T, T), every row summing to 1."""
    T, S = _shape(masked, 2, "masked")
    s = _Sheet("weights = softmax(masked)")
    left = s.grid(masked, 1.3, 0, "masked", "activation", inf_key=True)
    x = s.op(left.x1 + GAP, 0, "softmax")
    right = s.grid(weights, x + GAP + 1.3, 0, "weights", "result", absolute=True)
    sums = weights.detach().float().sum(-1)
    cell = (right.y1 - right.y0) / len(sums)
    s.text(right.x1 + 1.6, right.y1 + 0.3, "Σ", va="bottom", size=NAME_SIZE)
    if len(sums) <= 12:
        for i, total in enumerate(sums.tolist()):
            s.text(right.x1 + 1.6, right.y1 - (i + 0.5) * cell, f"{total:.2f}", size=6.5)
    else:
        s.text(right.x1 + 0.6, right.yc, f"{float(sums.min()):.2f}\n…\n{float(sums.max()):.2f}", ha="left", size=6.5)
    return s.finish("softmax_step", {"T": T})


def values_step(weights: Tensor, v: Tensor, out: Tensor) -> Figure | None:
    """weights (T, T) @ v (T, Dh) → out (T, Dh): each token's mix of the values it looks at."""
    T, S = _shape(weights, 2, "weights")
    S_v, Dh = _shape(v, 2, "v")
    s = _Sheet("out = weights @ v")
    s.row([_m("weights", (T, S), ("T", "T"), "activation"), "@", _m("v", (S_v, Dh), ("T", "Dh"), "activation"),
           "→", _m("out", _shape(out, 2, "out"), ("T", "Dh"), "result")])
    return s.finish("values_step", {"T": T, "Dh": Dh})


# --------------------------------------------------------------------------- all heads, and the rest of a layer

def gqa(n_heads: int, n_kv_heads: int) -> Figure | None:
    """Grouped-query attention: query head h uses key/value head h // N_REP."""
    if n_heads % n_kv_heads:
        raise ValueError(f"{n_heads} query heads do not split into {n_kv_heads} groups")
    H, H_KV, N_REP = n_heads, n_kv_heads, n_heads // n_kv_heads
    s = _Sheet("GQA: q head h → k, v head h // N_REP")
    bw = min(2.4, 56 / H)  # a query head's box; the row is at most 56 units wide
    q_boxes = []
    for h in range(H):
        box = s.rect(h * bw, 6, bw * 0.85, 1.8, COLORS["activation"], EDGES["activation"], lw=0.7)
        s.text(box.xc, box.yc, str(h), size=_fitting_size(str(h), bw * 0.85, 1.8, 7))
        q_boxes.append(box)
    palette = ["#1f78b4", "#e66101", "#33a02c", "#6a3d9a", "#b15928", "#e31a1c", "#a6761d", "#666666"]
    for g in range(H_KV):
        group = q_boxes[g * N_REP:(g + 1) * N_REP]
        xc = (group[0].xc + group[-1].xc) / 2
        w = max(N_REP * bw * 0.6, 1.2)
        kv = s.rect(xc - w / 2, 0, w, 1.8, COLORS["activation"], EDGES["activation"], lw=0.7)
        s.text(kv.xc, kv.yc, str(g), size=_fitting_size(str(g), w, 1.8, 7))
        for q in group:
            s.line([q.xc, kv.xc], [q.y0, kv.y1], color=palette[g % len(palette)], lw=0.8)
    s.text(-0.8, 6.9, "q", ha="right", size=NAME_SIZE)
    s.text(-0.8, 0.9, "k, v", ha="right", size=NAME_SIZE)
    s.text(q_boxes[-1].x1 + 0.8, 6.9, f"H = {H}", ha="left")
    s.text(q_boxes[-1].x1 + 0.8, 0.9, f"H_KV = {H_KV}", ha="left")
    first = q_boxes[:N_REP]  # one group bracketed
    s.line([first[0].x0, first[0].x0, first[-1].x1, first[-1].x1], [8.2, 8.6, 8.6, 8.2], color="#333333", lw=0.8)
    s.text(first[0].x0, 8.9, f"N_REP = {N_REP}", ha="left", va="bottom")
    return s.finish("gqa", {"H": H, "H_KV": H_KV, "N_REP": N_REP})


def heads_join(heads_out: Tensor, wo: Tensor, residual: Tensor, out: Tensor) -> Figure | None:
    """heads (T, H, Dh) side by side → (T, H·Dh) @ woᵀ (H·Dh, D) → (T, D), + the residual h → out."""
    T, H, Dh = _shape(heads_out, 3, "heads_out")
    D, HDh = _shape(wo, 2, "wo")
    s = _Sheet("out = h + heads @ woᵀ")
    stack = s.stack(1.3, 0, H, "H", _m("heads", (T, Dh), ("T", "Dh"), "activation"))
    x = s.op(stack.x1 + GAP, 0, "→")
    flat = s.matrix(_m("heads", (T, H * Dh), ("T", "H·Dh"), "activation"), x + GAP + 1.3, 0)
    for i in range(1, min(H, 64)):  # where one head ends and the next begins
        s.line([flat.x0 + i * (flat.x1 - flat.x0) / H] * 2, [flat.y0, flat.y1], color=EDGES["activation"], lw=0.4)
    x = s.op(flat.x1 + GAP, 0, "@")
    wo_box = s.matrix(_m("woᵀ", (HDh, D), ("H·Dh", "D"), "weight"), x + GAP + 1.3, 0)
    (attn_out, *_), _ = s.row([_m("attn_out", (T, D), ("T", "D"), "activation"), "+",
                               _m("h", _shape(residual, 2, "residual"), ("T", "D"), "activation"), "→",
                               _m("out", _shape(out, 2, "out"), ("T", "D"), "result")],
                              yc=wo_box.y0 - 4.5 - scale(T) / 2)
    s.wrap((wo_box.x1 + 0.3, wo_box.yc), attn_out, wo_box.y0 - 1.0)
    return s.finish("heads_join", {"T": T, "H": H, "Dh": Dh, "H·Dh": HDh, "D": D})


def swiglu(x: Tensor, w1: Tensor, w3: Tensor, w2: Tensor, out: Tensor) -> Figure | None:
    """SwiGLU: x (T, D) up to F twice (gate, through SiLU, and up), multiplied, then w2 down to (T, D)."""
    T, D = _shape(x, 2, "x")
    F, D1 = _shape(w1, 2, "w1")
    s = _Sheet("SwiGLU")
    x_box = s.matrix(_m("x", (T, D), ("T", "D"), "activation"), 1.3, 0)
    branch_gap = scale(D) / 2 + 2.5
    for name, w, y, after in (("gate", w1, branch_gap, "SiLU"), ("up", w3, -branch_gap, None)):
        F_w, D_w = _shape(w, 2, name)
        start = x_box.x1 + 2.5
        s.arrow((x_box.x1, 0), (start, y * 0.9), lw=0.8)
        items = ["@", _m(f"w{1 if name == 'gate' else 3}ᵀ", (D_w, F_w), ("D", "F"), "weight"), "→",
                 _m(name, (T, F_w), ("T", "F"), "activation")]
        s.row(items + ([after] if after else []), x0=start, yc=y)
    F2, D2 = _shape(w2, 2, "w2")
    y3 = -branch_gap - scale(D) / 2 - 3.5 - scale(F2) / 2
    s.row(["SiLU(gate) ⊙ up  →", _m("hidden", (T, F), ("T", "F"), "activation"), "@",
           _m("w2ᵀ", (D2, F2), ("F", "D"), "weight"), "→",
           _m("out", _shape(out, 2, "out"), ("T", "D"), "result")], yc=y3)
    return s.finish("swiglu", {"T": T, "D": D, "F": F})


def final_output(h_last: Tensor, norm_weight: Tensor, out_matrix_shape_or_tensor, logits: Tensor) -> Figure | None:
    """The last token's row (D) → RMSNorm → @ outputᵀ (D, V) → logits (V): one score per token of the vocabulary."""
    T, D = _shape(h_last, 2, "h_last")
    V, D_out = _shape(out_matrix_shape_or_tensor, 2, "the output matrix")
    row = logits if logits.ndim == 1 else logits[-1]
    s = _Sheet("logits = RMSNorm(h[-1]) @ outputᵀ")
    (h_box, _, _), end1 = s.row([_m("h", (T, D), ("T", "D"), "activation"), "→",
                              _m("h[-1]", (D,), ("D",), "activation"), "RMSNorm  ⊙",
                              _m("norm", _shape(norm_weight, 1, "norm_weight"), ("D",), "weight")])
    s.rect(h_box.x0, h_box.y0, h_box.x1 - h_box.x0, 0.35, EDGES["activation"], "none")  # its last row
    y2 = h_box.y0 - 4.5 - scale(D_out) / 2
    (normed, _, logit_box), _ = s.row([_m("normed", (D,), ("D",), "activation"), "@",
                                       _m("outputᵀ", (D_out, V), ("D", "V"), "weight"), "→",
                                       _m("logits" if logits.ndim == 1 else "logits[-1]", row.shape, ("V",),
                                          "result")], yc=y2)
    s.wrap((end1 + 0.3, h_box.yc), normed, h_box.y0 - 1.3)
    s.text(logit_box.xc, logit_box.y0 - 0.5, f"argmax → id {int(row.argmax())}", va="top")
    return s.finish("final_output", {"T": T, "D": D, "V": V})


# --------------------------------------------------------------------------- generation

def kv_cache(cfg, T: int, n_steps: int, max_len: int) -> Figure | None:
    """The cache of keys and values, (T_max, H_KV, Dh) each, per layer: the prefill fills T rows, each step one."""
    L, H_KV, Dh = cfg.n_layers, cfg.n_kv_heads, cfg.head_dim
    if T + n_steps > max_len:
        raise ValueError(f"T + n_steps = {T + n_steps} rows do not fit in a cache of {max_len}")
    s = _Sheet("KV cache")
    x = s.op(0, 0, f"L = {L}  ×", size=NAME_SIZE)
    cols = f"H_KV = {H_KV} × Dh = {Dh}"
    for name in ("cache_k", "cache_v"):
        box = s.matrix(_m(name, (max_len, H_KV * Dh), ("T_max", None), "activation", col_text=cols), x + 2.5, 0,
                       name_below=True)
        top = box.y1 - scale(T)  # the prefill's T rows, from the top, on the compressed scale
        s.rect(box.x0, top, box.x1 - box.x0, scale(T), EDGES["activation"], "none", alpha=0.8)
        for i in range(1, min(n_steps, 3) + 1):  # the first steps, one row each (drawn thick enough to see)
            th = max(scale(T + i) - scale(T + i - 1), 0.9)
            th = min(th, top - box.y0)  # a cache just big enough: the rows still end inside it
            s.rect(box.x0, top - th, box.x1 - box.x0, th, EDGES["result"], "white", lw=0.5, alpha=1 - 0.22 * i)
            s.text(box.x1 + 0.3, top - th / 2, f"+{i}", ha="left", size=6.5)
            top -= th
        x = box.x1 + 2.5
    s.text(box.x1 + 0.3, box.y1 - scale(T) / 2, f"T = {T}", ha="left")
    return s.finish("kv_cache", {"L": L, "T_max": max_len, "H_KV": H_KV, "Dh": Dh, "T": T})


def top_p(probs: Tensor, p: float, top: int = 12) -> Figure | None:
    """The probabilities sorted, their running sum, and Meta's cut: drop a token once the ones before it hold p."""
    probs = probs.detach().float().reshape(-1)
    V = len(probs)
    sorted_p, order = probs.sort(descending=True)
    cumsum = sorted_p.cumsum(0)
    kept = int((cumsum - sorted_p <= p).sum())  # sample_top_p: probs_sort[probs_sum - probs_sort > p] = 0
    n = min(top, V)
    s = _Sheet("top-p")
    tall, bw = 16.0, 2.0  # units for probability 1; a bar's width
    s.line([0, 0], [0, tall], color="#777777", lw=0.8)
    for tick in (0, 0.5, 1):
        s.text(-0.4, tick * tall, f"{tick:g}", ha="right", size=7)
    for i in range(n):
        kind = "result" if i < kept else None
        s.rect(0.5 + i * bw, 0, bw * 0.8, float(sorted_p[i]) * tall, COLORS[kind] if kind else NEUTRAL,
               EDGES[kind] if kind else "#999999", lw=0.7)
        s.text(0.5 + (i + 0.4) * bw, -0.4, str(int(order[i])), rotation=90, ha="center", va="top", size=6.5)
    xs = [0.5 + (i + 0.4) * bw for i in range(n)]
    s.line(xs, [float(c) * tall for c in cumsum[:n]], color=EDGES["activation"], lw=1.2, marker="o", ms=3)
    s.text(xs[-1] + 0.8, float(cumsum[n - 1]) * tall, "Σ", ha="left", color=EDGES["activation"], size=NAME_SIZE)
    right = 0.5 + n * bw
    s.line([0, right], [p * tall] * 2, color="#333333", lw=0.8, ls="--")
    s.text(right + 0.3, p * tall, f"p = {p}", ha="left")
    cut = 0.5 + min(kept, n) * bw - 0.1 * bw
    s.line([cut, cut], [0, tall * 1.05], color=EDGES["result"], lw=1.2, ls=":")
    s.text(cut if kept <= n else right, tall * 1.08, f"kept = {kept}" + ("" if kept <= n else " →"),
           va="bottom", ha="center" if kept <= n else "right", color=EDGES["result"])
    s.text(0, -5.0, f"sorted: {n} of V = {V} (ids ↓)", ha="left", va="top")
    return s.finish("top_p", {"V": V, "p": p, "kept": kept})


def chat_layout(pieces: list[str], special: set[str]) -> Figure | None:
    """A chat prompt's tokens: special tokens (the template) coloured apart from the text; long text runs cut."""
    T = len(pieces)
    s = _Sheet("chat")
    shown, colors, i = [], [], 0
    while i < T:
        j = i
        while j < T and (pieces[j] in special) == (pieces[i] in special):
            j += 1
        group = pieces[i:j]
        if pieces[i] not in special and len(group) > TEXT_RUN:  # a long stretch of text: its ends, "…" between
            group = group[:3] + ["…"] + group[-2:]
        for piece in group:
            shown.append(piece if piece in special else "…" if piece == "…" else _visible(piece, 9))
            colors.append(SPECIAL if piece in special else COLORS["activation"])
        i = j
    lowest = _token_boxes(s, shown, 0, colors)
    y = lowest - 1.2
    s.rect(0, y - 1.4, 1.4, 1.4, SPECIAL, "#555555", lw=0.7)
    s.text(1.9, y - 0.7, "special", ha="left")
    s.rect(9, y - 1.4, 1.4, 1.4, COLORS["activation"], "#555555", lw=0.7)
    s.text(10.9, y - 0.7, "text", ha="left")
    s.text(18, y - 0.7, f"T = {T}", ha="left", size=NAME_SIZE)
    return s.finish("chat_layout", {"T": T})


# --------------------------------------------------------------------------- the README's picture

def main() -> int:
    parser = argparse.ArgumentParser(description="Draw the overview picture of a model, from its params.json, "
                                                 "into a PNG file (the README's picture of Llama 3 8B).")
    parser.add_argument("params", type=Path, help="a params.json in Meta's format, e.g. Meta-Llama-3-8B/params.json")
    parser.add_argument("output", type=Path, help="the PNG file to write")
    parser.add_argument("--tokens", type=int, default=17, help="T, the prompt's length to draw (default: 17, "
                                                               "the 8B's default prompt)")
    args = parser.parse_args()
    from llama3_files import Config, InputError, read_params
    try:
        if args.params.name != "params.json" or args.tokens < 1:
            raise InputError(f"give a params.json and --tokens of at least 1 (got {args.params}, {args.tokens})")
        cfg = Config.from_params(read_params(args.params.parent))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    fig = overview(cfg, args.tokens)
    fig.savefig(args.output, format="png", dpi=100, bbox_inches="tight", pad_inches=0.08, facecolor="white",
                metadata={"Software": None})  # no version stamp: the same picture gives the same bytes
    print(f"wrote {args.output}: the overview with {fig.diagram['labels']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
