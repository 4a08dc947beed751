"""Slides: `jupyter nbconvert --to slides` makes one slide per section and one sub-slide per step."""

import re
from html.parser import HTMLParser

import nbformat
import pytest
from nbconvert import SlidesExporter

from notebook_runner import NOTEBOOK, ZH_NOTEBOOK
from slides import set_slide_metadata, slide_type


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


def deck(nb) -> list[int]:
    """The built deck: for each slide, its number of sub-slides (the slide's own first screen included)."""
    html, _ = SlidesExporter(reveal_scroll=True).from_notebook_node(nb)
    tree = SectionTree()
    tree.feed(html)
    return tree.slides


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


def test_long_outputs_scroll_inside_their_slide():
    html, _ = SlidesExporter(reveal_scroll=True).from_notebook_node(nbformat.read(NOTEBOOK, as_version=4))
    assert re.search(r"scroll\s*[:=]\s*true", html)


def test_a_notebook_without_slide_metadata_makes_a_wrong_deck():
    # the deck test above cannot pass by accident: without the metadata everything is one slide
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("slideshow", None)
    assert set_slide_metadata(nbformat.reads(nbformat.writes(nb), as_version=4)) > 0
    assert deck(nb) != sections(nb)
