"""The prompts `prefalign eval` answers: a --prompts file, or the prompts of --data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefalign.config import ConfigError


def read_prompts(path: Path) -> list[list[dict[str, str]]]:
    """Prompts as message lists from .txt (one per line), .json/.jsonl rows with `prompt` (text or messages) or
    `messages` (up to the last user turn). A row eval cannot read is an error naming the file and row."""
    if not path.is_file():
        raise ConfigError(f"--prompts: {path}: no such file")
    if path.suffix == ".txt":
        return [[{"role": "user", "content": line.strip()}] for line in path.read_text().splitlines() if line.strip()]
    if path.suffix not in (".json", ".jsonl"):
        raise ConfigError(f"--prompts: {path}: expected .txt (one prompt per line), .json or .jsonl")
    text = path.read_text()
    try:
        rows = json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"--prompts: {path}: not valid JSON ({exc})") from None
    prompts = []
    for number, row in enumerate(rows if isinstance(rows, list) else [rows], 1):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if isinstance(prompt, str):
            prompts.append([{"role": "user", "content": prompt}])
        elif isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "content" in m for m in prompt):
            prompts.append(prompt)
        elif isinstance(row, dict) and isinstance(row.get("messages"), list):
            messages = row["messages"]
            last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
            if last_user is None:
                raise ConfigError(f"--prompts: {path}: row {number}: field messages has no user turn")
            prompts.append(messages[: last_user + 1])
        else:
            raise ConfigError(
                f"--prompts: {path}: row {number}: no `prompt` (a string or a list of messages) nor `messages` field"
            )
    return prompts


def data_prompts(eval_prompts: list[dict[str, Any]] | None) -> list[list[dict[str, str]]]:
    """The prompts of --data's rows, each once, in file order (a prompt with several answers is asked once)."""
    seen: dict[str, list] = {}
    for row in eval_prompts or []:
        seen.setdefault(json.dumps(row["prompt"]), row["prompt"])
    return list(seen.values())
