"""Layers only point down: no module imports one of a higher layer, lazily inside a function included."""

import ast
import pathlib

import prefalign
from prefalign import names
from prefalign.data.layout import LAYOUTS
from prefalign.data.templates import TEMPLATES

# Top to bottom. A module belongs to the layer of the longest prefix that names it; a layer may import its own
# modules and those of any layer below it.
LAYERS = [
    ["prefalign.cli", "prefalign.__main__", "prefalign.docs"],
    ["prefalign.run", "prefalign"],  # the package's __init__ re-exports prefalign.train
    ["prefalign.training", "prefalign.eval", "prefalign.export", "prefalign.report", "prefalign.memory"],
    ["prefalign.objective"],
    ["prefalign.model.reference", "prefalign.model.reference_cache"],  # reference strategies
    ["prefalign.scoring"],  # log-probs, rewards
    ["prefalign.model"],  # loading, built-in models, attention, the PEFT unwrap
    ["prefalign.data"],
    ["prefalign.config", "prefalign.dialects"],  # our schema, and other tools' configs translated into it
    ["prefalign.losses"],
    [
        "prefalign.names",
        "prefalign.atomic",
        "prefalign.gguf_types",
        "prefalign.optimizers",
        "prefalign.sizes",
    ],  # leaves
]

ROOT = pathlib.Path(prefalign.__file__).parent


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def module_name(path: pathlib.Path) -> str:
    parts = ["prefalign", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> set[str]:
    """Every prefalign module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "prefalign" or name.startswith("prefalign.")}


def known(name: str) -> bool:
    """`from prefalign.x import y` names a module only when y is one."""
    path = ROOT.joinpath(*name.split(".")[1:])
    return name == "prefalign" or path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_import_points_down_or_sideways():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        for target in sorted(filter(known, imported(ast.parse(path.read_text())))):
            if layer_of(target) < layer_of(module):
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_the_check_sees_an_upward_import():
    tree = ast.parse("def f():\n    from prefalign.objective import Objective\n")
    assert "prefalign.objective" in imported(tree)
    assert layer_of("prefalign.objective") < layer_of("prefalign.model.reference_cache")
    assert layer_of("prefalign.model.reference_cache") < layer_of("prefalign.model.load")
    assert layer_of("prefalign.scoring.logps") < layer_of("prefalign.model.attention")


def test_shared_names_match_what_data_builds():
    assert ("auto", *LAYOUTS) == names.LAYOUT_NAMES
    assert tuple(TEMPLATES) == names.BUILTIN_TEMPLATES
