"""The report's landing page (workflow/report/workflow.rst) opens at its top in a browser.

Snakemake centres it vertically in a flex box as tall as the window (`items-center h-screen
overflow-auto` in its report template's content.js): a page taller than the window is cut at
the top, out of reach of the scroll bar, with the rule graph beside it (issue 33). Two guards,
checked from the report's sources: the page fits a 1366x768 window, and it carries a style that
aligns the box's content safely, so that a taller page (a long rule graph) opens at its top.
"""

import math
import re
from pathlib import Path
from types import SimpleNamespace

import docutils.core
import jinja2
import pytest
import snakemake.report
import yaml
from conftest import REPO
from docutils import nodes
from test_workflow import EXPERIMENTS, MODES

from rnnlm.config import Workflow
from rnnlm.plan.expand import make_plan

PAGE = REPO / "workflow" / "report" / "workflow.rst"
TEMPLATE = Path(snakemake.report.__file__).parent / "html_reporter" / "template" / "components"
# The page's column (prose-sm max-w-lg: 512 px, 14 px text on 24 px lines) holds about 68
# characters a line; a 768 px window less the report's padding holds 28 lines.
CHARACTERS_PER_LINE, WINDOW_LINES = 68, 28
CONFIGS = {
    "config.yaml": yaml.safe_load((REPO / "config.yaml").read_text()),
    "the tests' two experiments": {"modes": MODES, "run": list(EXPERIMENTS),
                                   "experiments": EXPERIMENTS},
    "a sweep": {"run": ["tutorial", "lr-dropout"], "sweeps": {"lr-dropout": {
        "base": "tutorial", "grid": {"lr": [0.5, 1, 2], "dropout": [0, 0.2, 0.5]}}}},
}


def rendered(config):
    """The page as Snakemake renders it (its Jinja settings), a docutils tree."""
    plan = make_plan(config, Workflow(REPO / "workflow"))
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(PAGE.read_text()).render(
        snakemake=SimpleNamespace(config=plan.config))
    return docutils.core.publish_doctree(text, settings_overrides={"report_level": 5})


def lines(tree):
    """Lines the page takes in the report's column: a paragraph's wrapped text and a gap after
    it, three for a heading, one and a half per table row."""
    count = 0.0
    for node in tree.findall(lambda n: isinstance(n, nodes.paragraph | nodes.title | nodes.row)):
        if isinstance(node, nodes.title):
            count += 3
        elif isinstance(node, nodes.row):
            count += 1.5
        else:
            count += math.ceil(len(node.astext()) / CHARACTERS_PER_LINE) + 0.5
    return count


@pytest.mark.parametrize("name", CONFIGS)
def test_the_landing_page_fits_a_1366x768_window(name):
    tree = rendered(CONFIGS[name])
    assert "Config used" in tree.astext()  # the config summary is there, short
    assert lines(tree) <= WINDOW_LINES, tree.astext()


def test_a_page_taller_than_the_window_still_opens_at_its_top():
    """The page's style aligns Snakemake's centring box to `safe center`: centred when it
    fits, from its top when not. It names the box by the template's classes: a Snakemake that
    renames them fails here, not silently in the browser."""
    style = re.search(r"<style>div((?:\.[\w-]+)+) \{ align-items: safe center; \}</style>",
                      PAGE.read_text())
    assert style, "workflow.rst lost its style for Snakemake's centring box"
    classes = style[1].strip(".").split(".")
    boxes = re.findall(r'className: "([^"]*)"', (TEMPLATE / "content.js").read_text())
    assert any({"items-center", "overflow-auto"} <= set(classes) <= set(box.split())
               for box in boxes), f"no box of classes {classes} in Snakemake's content.js"
