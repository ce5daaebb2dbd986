"""GGUF at the end of a run (output.gguf): checked before training, written from the merged model after it."""

from __future__ import annotations

from pathlib import Path

from prefalign.config import ConfigError, RunConfig
from prefalign.export.gguf import export_gguf
from prefalign.export.gguf_arch import GgufArchError


def check_gguf_output(config: RunConfig) -> None:
    """Fail before training when output.gguf cannot be written for this model (architecture, tokenizer)."""
    if not config.output.gguf:
        return
    from prefalign.export.gguf import check_exportable
    from prefalign.model.load import resolve_path

    try:
        check_exportable(resolve_path(config.model.path), config.model.revision, config.model.trust_remote_code)
    except GgufArchError as exc:
        raise ConfigError(f"output.gguf: {exc}; remove output.gguf to train this model") from None


def gguf_name(config: RunConfig) -> str:
    """Files are named after the run directory: runs/quickstart -> quickstart-Q4_K_M.gguf."""
    return Path(config.output.dir).resolve().name or "model"


def write_run_gguf(config: RunConfig, run_dir: Path, merged_dir: Path) -> list[Path]:
    """RUN_DIR/gguf/<name>-<QUANT>.gguf for each type in output.gguf, from the saved merged model."""
    overwrite = config.output.overwrite or config.train.resume  # a resumed run rewrites its own exports
    return export_gguf(merged_dir, run_dir / "gguf", gguf_name(config), config.output.gguf, overwrite=overwrite)
