"""Committed notebooks: outputs stripped, a `parameters` first code cell, a Colab-only install, no secrets."""

from __future__ import annotations

import re

import nbformat
import pytest

from friction_lib.workshop import numbered_notebooks

NOTEBOOKS = numbered_notebooks()


def test_the_chain_has_notebooks():
    assert NOTEBOOKS, "no numbered notebooks in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_stripped(path):
    nb = nbformat.read(str(path), as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them (nbstripout or Clear All Outputs)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_parameters_with_colab_install(path):
    nb = nbformat.read(str(path), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assert "PROFILE" in first.source and "SMOKE" in first.source
    assert '"google.colab" in sys.modules' in first.source  # installs only on Colab


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_token_in_notebook(path):
    text = path.read_text()
    assert not re.search(r"hf_[A-Za-z0-9]{30,}", text)
    assert "print(os.environ" not in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_imports_friction_lib_visibly(path):
    nb = nbformat.read(str(path), as_version=4)
    assert any("friction_lib" in c.source for c in nb.cells if c.cell_type == "code")
