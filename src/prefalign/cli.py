"""The `prefalign` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from prefalign.config import ConfigError

app = typer.Typer(
    help="Align language models with human preferences (DPO and its family) from one YAML file.\n\n"
    "Start with:  prefalign train examples/quickstart.yaml",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def train(
    config: Annotated[Path, typer.Argument(help="The run's YAML config (see examples/).")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="dotted.key=value overrides, values read as YAML: train.lr=1e-5 model.lora=null"),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")] = False,
) -> None:
    """Train a model as CONFIG describes: load, evaluate, train, evaluate, save, summarise."""
    from prefalign.data import DataError
    from prefalign.run import train as run_train

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    extra = [*(overrides or []), *(["train.resume=true"] if resume else [])]
    try:
        run_train(config, extra)
    except (ConfigError, DataError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def methods() -> None:
    """List the preference losses prefalign knows (the registry)."""
    from prefalign.losses import LOSSES

    table = Table("name", "family", "needs reference", "hyper-parameters", "paper")
    for spec in LOSSES.values():
        table.add_row(
            spec.name,
            spec.family,
            "yes" if spec.needs_reference else "no",
            ", ".join(spec.hyperparams),
            spec.paper,
        )
    Console().print(table)


def main() -> None:
    app()
