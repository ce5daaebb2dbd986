"""What prefalign writes and reads runs no code: safetensors for weights, torch's safe loader, no pickle,
no shell, and the hub's model code only when the config allows it (and the card says so)."""

import ast
import re
from pathlib import Path

import prefalign
from prefalign.config import load_config
from prefalign.export.card import model_card

SOURCE = Path(prefalign.__file__).parent
FILES = sorted(SOURCE.rglob("*.py"))


def calls(name: str):
    """(file, call node) for every call of `name` (a dotted name such as torch.load) in prefalign's source."""
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                yield path, node


def test_every_torch_load_uses_the_safe_loader():
    found = list(calls("torch.load"))
    assert found, "the checkpoint loader reads optimizer state with torch.load"
    for path, node in found:
        safe = [k for k in node.keywords if k.arg == "weights_only" and ast.unparse(k.value) == "True"]
        assert safe, f"{path.relative_to(SOURCE)}:{node.lineno}: torch.load without weights_only=True"


def test_no_pickle_no_shell_no_eval():
    for path in FILES:
        text = path.read_text()
        tree = ast.parse(text)
        where = path.relative_to(SOURCE)
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert not imported & {"pickle", "dill", "cloudpickle", "marshal", "shelve"}, where
        assert not re.search(r"\bshell\s*=\s*True", text), where
        assert not re.search(r"\bos\.(system|popen)\(", text), where
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec"), f"{where}:{node.lineno}"


def test_weights_are_written_as_safetensors():
    """save_pretrained writes safetensors by default; no call may turn that off."""
    for path in FILES:
        assert "safe_serialization=False" not in path.read_text(), path


def test_remote_code_is_off_unless_set_and_then_on_the_card(tmp_path):
    config = load_config({"data": {"train": "x.jsonl"}, "output": {"dir": str(tmp_path / "run")}})
    assert config.model.trust_remote_code is False
    assert "trust_remote_code" not in model_card(config, {"loss": 0.5}, None, 1, "adapter")
    trusted = load_config(config, ["model.trust_remote_code=true"])
    assert "| trust_remote_code | true: the base model's own code ran" in model_card(trusted, {"loss": 0.5}, None, 1)
    # every loader passes the config's value on (none hard-codes True)
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert ast.unparse(node.value) in ("config.trust_remote_code", "config.model.trust_remote_code"), (
                    f"{path}:{node.value.lineno}"
                )
