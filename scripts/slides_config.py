"""nbconvert settings for the slide deck, so that one command makes a deck a teacher can present.

Usage (from the repository root):
    jupyter nbconvert --to slides --config scripts/slides_config.py llama3-from-scratch.ipynb

- reveal_scroll: a cell or output taller than the screen scrolls inside its slide;
- the "classroom" template (scripts/slides_template/classroom) is nbconvert's reveal.js template with five fixes,
  each seen in a headless browser: long code lines are wrapped instead of cut off at the slide's edge, and a full
  line keeps its last character; a deck opened (or reloaded) at a slide with formulas shows each formula once, not
  twice (nbconvert's redraw on a slide change is queued behind MathJax's first typesetting); the first slide shown
  scrolls too; a long step scrolls all the way to its end (its box is sized in reveal.js's units, which reveal.js
  zooms to the window, not in the window's); and printed outputs break between words, not inside numbers.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (nbconvert defines get_config when it reads this file)
c.SlidesExporter.reveal_scroll = True
c.SlidesExporter.extra_template_basedirs = [str(Path(__file__).resolve().parent / "slides_template")]
c.SlidesExporter.template_name = "classroom"
