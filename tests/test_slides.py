"""Slides: `jupyter nbconvert --to slides` makes one slide per section and one sub-slide per step.

The deck is built as the README says, with scripts/slides_config.py (scrolling, and the "classroom" template's fixes).
"""

import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser

import nbformat
import pytest
from nbconvert import SlidesExporter
from traitlets.config.loader import PyFileConfigLoader

from notebook_runner import NOTEBOOK, REPO, ZH_NOTEBOOK
from slides import set_slide_metadata, slide_type
from test_readme import bash_blocks

SLIDES_CONFIG = REPO / "scripts" / "slides_config.py"
# What the classroom template adds to nbconvert's reveal.js deck (see scripts/slides_config.py)
WRAPPED_CODE = ".reveal .jp-InputArea-editor .highlight pre {\n  white-space: pre-wrap !important;"
QUEUED_REDRAW = 'MathJax.Hub.Queue(["Rerender", MathJax.Hub, Reveal.getCurrentSlide()])'
FIRST_SLIDE_SCROLLS = "Reveal.addEventListener('ready', setScrollingSlide)"
SCROLL_BOX_IN_SLIDE_UNITS = "var h = Reveal.getConfig().height - 20;"  # not calc(95vh): reveal.js zooms the slide
FULL_LINE_KEPT = "box-sizing: border-box;  /* the padding inside the grey box"
OUTPUTS_BREAK_BETWEEN_WORDS = ".reveal .jp-OutputArea-output pre {\n  word-break: normal !important;"
FIXES = (WRAPPED_CODE, QUEUED_REDRAW, FIRST_SLIDE_SCROLLS, SCROLL_BOX_IN_SLIDE_UNITS, FULL_LINE_KEPT,
         OUTPUTS_BREAK_BETWEEN_WORDS)


def classroom_config():
    return PyFileConfigLoader(SLIDES_CONFIG.name, path=str(SLIDES_CONFIG.parent)).load_config()


class SectionTree(HTMLParser):
    """The nesting of <section> elements inside reveal.js's <div class="slides">: one count per top-level slide."""

    def __init__(self):
        super().__init__()
        self.depth, self.inside, self.div_depth, self.slides = 0, False, 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "div":
            self.div_depth += 1
            if ("class", "slides") in attrs:
                self.inside, self.slides_div = True, self.div_depth
        elif tag == "section" and self.inside:
            self.depth += 1
            if self.depth == 1:
                self.slides.append(0)
            elif self.depth == 2:
                self.slides[-1] += 1

    def handle_endtag(self, tag):
        if tag == "section" and self.inside:
            self.depth -= 1
        elif tag == "div":
            if self.inside and self.div_depth == self.slides_div:
                self.inside = False
            self.div_depth -= 1


def slide_counts(html: str) -> list[int]:
    """For each slide of a built deck, its number of sub-slides (the slide's own first screen included)."""
    tree = SectionTree()
    tree.feed(html)
    return tree.slides


def deck(nb) -> list[int]:
    """The deck built with scripts/slides_config.py, as slide_counts."""
    html, _ = SlidesExporter(config=classroom_config()).from_notebook_node(nb)
    return slide_counts(html)


def sections(nb) -> list[int]:
    """From the notebook's headings: for the title and each '## ' section, how many markdown steps it has."""
    counts = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            if index == 0 or cell.source.startswith("## "):
                counts.append(1)
            else:
                counts[-1] += 1
    return counts


@pytest.mark.parametrize("path", [NOTEBOOK, ZH_NOTEBOOK], ids=["en", "zh"])
def test_the_deck_has_one_slide_per_section_and_one_sub_slide_per_step(path):
    nb = nbformat.read(path, as_version=4)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert len(headings) >= 20  # sections 1 to 19 and "Where to go from here"
    built = deck(nb)
    assert len(built) == 1 + len(headings)  # the title slide, then one per section
    assert built == sections(nb)
    assert sum(built) > 3 * len(built)  # the steps are sub-slides, not one long page per section


@pytest.mark.parametrize("path", [NOTEBOOK, ZH_NOTEBOOK], ids=["en", "zh"])
def test_every_cell_follows_the_slide_rule(path):
    nb = nbformat.read(path, as_version=4)
    assert set_slide_metadata(nb) == 0, "run python scripts/slides.py"
    # every code cell stays with the markdown that explains it, its output included
    assert all(slide_type(c, i) == "-" for i, c in enumerate(nb.cells) if c.cell_type == "code")


def slides_command(readme: str) -> str:
    """The README's command that builds the deck: the first line in its bash blocks that runs nbconvert --to slides
    (the one "To present" gives; an offline variant may follow)."""
    found = [line for block in bash_blocks(readme) for line in block.splitlines() if "nbconvert --to slides" in line]
    assert found, f"{readme} does not say how to build the slides"
    return found[0]


@pytest.mark.parametrize("readme, path", [("README.md", NOTEBOOK), ("README.zh.md", ZH_NOTEBOOK)], ids=["en", "zh"])
def test_the_readme_command_builds_the_classroom_deck(readme, path, tmp_path):
    command = shlex.split(slides_command(readme))
    assert command[:3] == ["jupyter", "nbconvert", "--to"] and command[-1] == path.name, command
    # run exactly that, from the repository root, only with the deck written to tmp_path instead of beside it
    subprocess.run([sys.executable, "-m", *command, "--output-dir", str(tmp_path)], cwd=REPO, check=True,
                   capture_output=True, text=True)
    html = (tmp_path / path.name.replace(".ipynb", ".slides.html")).read_text(encoding="utf-8")
    assert slide_counts(html) == sections(nbformat.read(path, as_version=4))
    assert re.search(r"var scroll = true", html)  # long cells and outputs scroll inside their slide
    for fix in FIXES:
        assert fix in html, fix


def test_the_fixes_come_from_the_classroom_template():
    # nbconvert's own reveal.js template lacks them: if a newer nbconvert renamed the blocks the template overrides,
    # its deck would silently lose them, and the test above would fail
    nb = nbformat.read(NOTEBOOK, as_version=4)
    plain, _ = SlidesExporter(reveal_scroll=True).from_notebook_node(nb)
    classroom, _ = SlidesExporter(config=classroom_config()).from_notebook_node(nb)
    assert "MathJax.Hub.Rerender(Reveal.getCurrentSlide())" in plain and "MathJax.Hub.Rerender(" not in classroom
    assert ".css('height', 'calc(95vh)')" in plain and ".css('height', 'calc(95vh)')" not in classroom
    for fix in FIXES:
        assert fix not in plain and fix in classroom, fix
    assert slide_counts(plain) == slide_counts(classroom)  # the same slides


def test_a_notebook_without_slide_metadata_makes_a_wrong_deck():
    # the deck test above cannot pass by accident: without the metadata everything is one slide
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("slideshow", None)
    assert set_slide_metadata(nbformat.reads(nbformat.writes(nb), as_version=4)) > 0
    assert deck(nb) != sections(nb)


def test_the_readmes_state_the_size_of_the_deck():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    slides, screens = len(sections(nb)), sum(sections(nb))
    en = (REPO / "README.md").read_text(encoding="utf-8")
    zh = (REPO / "README.zh.md").read_text(encoding="utf-8")
    assert f"{slides} slides (the title, sections 1 to {slides - 2}, " in en and f"{screens} screens in all" in en
    assert f"{slides} 张幻灯片（标题、第 1 到 {slides - 2} 节" in zh and f"共 {screens} 屏" in zh
