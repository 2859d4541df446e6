"""Fixtures of the fault suite (the shared corpus fixtures are in tests/conftest.py)."""

import pytest

from faults.pipeline import prepare_data, tiny_workflow


@pytest.fixture(scope="session")
def data_ready(tmp_path_factory, tiny_mirror):
    """The tiny workflow with its data stages done; tests copy it and never change it."""
    return prepare_data(tiny_workflow(tmp_path_factory.mktemp("data_ready"), *tiny_mirror))
