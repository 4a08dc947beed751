"""nbconvert settings for the slide deck, so that one command makes a deck a teacher can present.

Usage (from the repository root):
    jupyter nbconvert --to slides --config scripts/slides_config.py llama3-from-scratch.ipynb

- reveal_scroll: a cell or output taller than the screen scrolls inside its slide;
- the "classroom" template (scripts/slides_template/classroom) is nbconvert's reveal.js template with three fixes,
  each seen in a headless browser: long code lines are wrapped instead of cut off at the slide's edge; a deck
  opened (or reloaded) at a slide with formulas shows each formula once, not twice (nbconvert's redraw on a slide
  change is queued behind MathJax's first typesetting); and the first slide shown scrolls too.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (nbconvert defines get_config when it reads this file)
c.SlidesExporter.reveal_scroll = True
c.SlidesExporter.extra_template_basedirs = [str(Path(__file__).resolve().parent / "slides_template")]
c.SlidesExporter.template_name = "classroom"
