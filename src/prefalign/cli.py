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
def methods(
    name: Annotated[str | None, typer.Argument(help="A loss to describe in full (formula, paper, inputs).")] = None,
) -> None:
    """List the preference losses prefalign knows (the registry), or describe one."""
    import inspect

    from prefalign.losses import LOSSES

    console = Console()
    if not console.is_terminal:  # piped (grep, a file): one line per loss, nothing cut
        console = Console(width=400)
    if name is not None:
        spec = LOSSES.get(name)
        if spec is None:
            err.print(f"[red]error:[/red] unknown loss {name!r}; known: {', '.join(LOSSES)}", highlight=False)
            raise typer.Exit(2)
        console.print(
            f"[bold]{spec.name}[/bold]  ({spec.family}; {'paired' if spec.paired else 'unpaired'} data; "
            f"reference {'needed' if spec.needs_reference else 'not used'})",
            highlight=False,
        )
        console.print(inspect.getdoc(spec.fn) or "", highlight=False)
        console.print(f"\nhyper-parameters: {', '.join(f'method.{p}' for p in spec.hyperparams) or 'none'}")
        console.print(f"reads: {', '.join(spec.inputs)}\npaper: {spec.paper}", highlight=False)
        return
    table = Table("name", "family", "data", "needs reference", "hyper-parameters", "paper")
    table.columns[-1].overflow = "fold"  # arXiv ids must stay whole, on narrow terminals too
    for spec in LOSSES.values():
        table.add_row(
            spec.name,
            spec.family,
            "paired" if spec.paired else "unpaired",
            "yes" if spec.needs_reference else "no",
            ", ".join(spec.hyperparams),
            spec.paper,
        )
    console.print(table)
    console.print("Describe one: prefalign methods NAME", highlight=False)


def main() -> None:
    app()
