"""Every module imports on its own (catches cycles and missing dependencies)."""

import importlib
import pkgutil

import pytest

import prefalign

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(prefalign.__path__, "prefalign.") if m.name != "prefalign.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


def test_package_never_imports_trl():
    """TRL is a test oracle only."""
    import pathlib

    root = pathlib.Path(prefalign.__file__).parent
    offenders = [p for p in root.rglob("*.py") if "import trl" in p.read_text() or "from trl" in p.read_text()]
    assert offenders == []
