"""Where `prefalign export gguf PATH` reads the model from, writes to, and what it names the files."""

from __future__ import annotations

from pathlib import Path

from prefalign.export.gguf import GgufExportError

RUN_MARKER = ".prefalign-run"  # the file prefalign.run puts in every run directory


def resolve_export_source(path: Path) -> tuple[Path, Path, str]:
    """(merged model directory, default output directory, file name stem) for a run directory or a model."""
    path = Path(path)
    if not path.is_dir():
        raise GgufExportError(f"{path}: not a directory; give a run directory or a merged transformers model")
    if (path / RUN_MARKER).is_file():
        merged = path / "merged"
        if not (merged / "config.json").is_file():
            raise GgufExportError(
                f"{path}: the run has no merged/ model (output.save had no merged); merge its adapter first "
                "(prefalign merge), or give a merged model directory"
            )
        return merged, path / "gguf", path.resolve().name
    if not (path / "config.json").is_file():
        raise GgufExportError(f"{path}: neither a prefalign run directory nor a model directory (no config.json)")
    run = path.parent if (path.parent / RUN_MARKER).is_file() else None
    if run is not None:  # RUN_DIR/merged given directly: the same files as for RUN_DIR
        return path, run / "gguf", run.resolve().name
    return path, path.parent / "gguf", path.resolve().name
