"""Shared fixtures. Tiers are pytest markers (see pyproject.toml); each test file marks itself."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def project_root() -> pathlib.Path:
    return ROOT
