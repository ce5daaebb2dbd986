"""README's generated tables match the schema and the registry."""

from prefalign.docs import SECTIONS, render
from tests.conftest import REPO


def test_readme_tables_are_current():
    readme = (REPO / "README.md").read_text()
    for name in SECTIONS:
        assert f"<!-- {name}:start -->" in readme, name
    assert render(readme) == readme, "README is stale: run `python -m prefalign.docs`"


def test_readme_names_the_test_command_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make test" in (REPO / ".ci" / "run").read_text()
