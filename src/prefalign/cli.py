"""The `prefalign` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

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
    dialect: FromOption = None,
    lenient: LenientOption = False,
) -> None:
    """Train a model as CONFIG describes: load, evaluate, train, evaluate, save, summarise. CONFIG may also be an
    Axolotl, LLaMA-Factory, TRL or AutoTrain config: it is translated, and what became of each key is printed."""
    from prefalign.data import DataError
    from prefalign.run import train as run_train

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    extra = [*(overrides or []), *(["train.resume=true"] if resume else [])]
    try:
        run_train(_config_for_training(config, extra, dialect, lenient))
    except (ConfigError, DataError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


# --- Configs of other tools (prefalign.dialects): train reads them, convert writes them as prefalign YAML -----

FromOption = Annotated[
    str | None,
    typer.Option("--from", help="The tool CONFIG was written for: axolotl, llamafactory, trl (trl:kto, trl:orpo, "
                 "...) or autotrain; recognised from its keys when not given."),
]  # fmt: skip
LenientOption = Annotated[
    bool, typer.Option("--lenient", help="Train without the foreign keys prefalign cannot honour instead of refusing.")
]


def _print_import(table: Any) -> None:
    from prefalign.dialects.convert import table_rows

    console = Console(stderr=True) if Console().is_terminal else Console(stderr=True, width=200)
    shown = Table("key", "value", "became", "note", title=f"{table.source}: read as a {table.dialect} config")
    for row in table_rows(table):
        shown.add_row(*row)
    console.print(shown)


def _config_for_training(config: Path, overrides: list[str], dialect: str | None, lenient: bool) -> Any:
    """The run's config, translated when it is another tool's (its table printed), with the loss the data calls
    for when none is named (unpaired rows: kto)."""
    from prefalign.config import load_config
    from prefalign.data import data_kind

    run_config = load_config(config, overrides, dialect=dialect, lenient=lenient)
    if run_config.import_table is not None:
        _print_import(run_config.import_table)
    run_config = run_config.for_data(data_kind(run_config.data))
    if run_config.method.loss_note:
        err.print(f"method.loss: {run_config.method.loss_note}", highlight=False)
    return run_config


config_app = typer.Typer(help="Work with config files: `convert` turns another tool's config into prefalign's.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(config_app, name="config")


@config_app.command(context_settings={"help_option_names": ["-h", "--help"]})
def convert(
    config: Annotated[Path, typer.Argument(help="An Axolotl, LLaMA-Factory, TRL or AutoTrain config.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides, as for train")] = None,
    dialect: FromOption = None,
    lenient: LenientOption = False,
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the YAML here instead of printing it.")
    ] = None,
) -> None:
    """Print the equivalent prefalign config: every default written out, each translated key commented with the
    key it came from. Training the result gives the same run as training CONFIG."""
    from prefalign.config import load_config
    from prefalign.dialects.convert import converted_yaml

    try:
        run_config = load_config(config, overrides or [], dialect=dialect, lenient=lenient)
    except ConfigError as exc:
        _fail(exc)
    text = converted_yaml(run_config, f"prefalign train {out or 'THIS_FILE.yaml'}")
    if out is None:
        Console(markup=False, highlight=False, soft_wrap=True).print(text, end="")
        return
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text)
    partial.replace(out)  # atomic: a reader never sees half a file
    err.print(f"wrote {out}", highlight=False)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
)
def autotrain(ctx: typer.Context, lenient: LenientOption = False) -> None:
    """Run AutoTrain's `autotrain llm --train ...` command line with prefalign: the dpo, orpo and reward trainers
    (--model, --data-path, --project-name, --trainer, --prompt-text-column, --text-column, --rejected-text-column,
    --dpo-beta, --model-ref, --max-completion-length, --peft, --lora-r, --lora-alpha, --lora-dropout, --lr,
    --epochs, --batch-size, --gradient-accumulation, --log, ...), then prefalign's own key=value overrides."""
    from prefalign.config import load_config
    from prefalign.data import DataError, data_kind
    from prefalign.dialects.autotrain import parse_args
    from prefalign.run import train as run_train

    try:
        params, overrides = parse_args(list(ctx.args))
        run_config = load_config(params, overrides, dialect="autotrain", lenient=lenient)
        _print_import(run_config.import_table)
        run_train(run_config.for_data(data_kind(run_config.data)))
    except (ConfigError, DataError) as exc:
        _fail(exc)


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


data_app = typer.Typer(
    help="See the data as training will: `preview` renders the first rows, `validate` checks every row. "
    "Both load the tokenizer only, never the model's weights.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

ConfigPath = Annotated[Path, typer.Argument(help="The run's YAML config (its data and model sections are read).")]
Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="dotted.key=value overrides, as for train: data.max_length=512 data.template=chatml"),
]


def _fail(exc: Exception) -> NoReturn:
    err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


def _data_setup(
    config: Path, overrides: list[str] | None, dialect: str | None = None, lenient: bool = False
) -> tuple[Any, Any, Console]:
    """The run's config, its tokenizer (no weights) and a console for data text; a config error exits 2."""
    from prefalign.config import load_config
    from prefalign.model.load import load_tokenizer

    try:
        run_config = load_config(config, overrides or [], dialect=dialect, lenient=lenient)
        tokenizer = load_tokenizer(run_config.model, convert_weights=False)
    except (ConfigError, OSError, ValueError) as exc:
        _fail(exc)
    # Data is printed as it is: no markup, emoji codes or highlighting; piped output is never wrapped.
    console = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
    return run_config, tokenizer, console


def _limits(config: Any) -> str:
    d = config.data
    template = {None: "the tokenizer's chat template (plain strings joined)", "tokenizer": "the tokenizer's"}.get(
        d.template, d.template
    )
    return (
        f"template: {template}; max_length {d.max_length}, max_prompt_length {d.max_prompt_length or 'none'}, "
        f"max_completion_length {d.max_completion_length or 'none'}"
    )


def _source_lines(config: Any, report: Any) -> list[str]:
    d, lines = config.data, []
    for key, sources in (("data.train", d.train), ("data.eval", d.eval or [])):
        for source in sources:
            read_as = report.sources.get(source.path)
            how = " (detected)" if read_as and source.format == "auto" and d.format == "auto" else ""
            lines.append(f"  {key}  {source.path}: {read_as + how if read_as else 'not read'}")
    return lines


@data_app.command(context_settings={"help_option_names": ["-h", "--help"]})
def preview(
    config: ConfigPath,
    overrides: Overrides = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="How many training rows to show.")] = 3,
    dialect: FromOption = None,
    lenient: LenientOption = False,
) -> None:
    """Show the first N training rows as training gets them: the rendered prompt and answers with the start of
    the scored tokens marked, token counts, the format of each source, and what truncation cuts."""
    import datasets

    from prefalign.data import DataError
    from prefalign.data.check import BOUNDARY, preview_rows, render_settings, truncation_lines

    run_config, tokenizer, out = _data_setup(config, overrides, dialect, lenient)
    datasets.disable_progress_bars()
    try:
        shown = preview_rows(run_config, tokenizer, n)
    except (ConfigError, DataError) as exc:
        _fail(exc)
    settings = render_settings(run_config.data)
    out.print(f"{config}: model {run_config.model.path} (tokenizer only); {_limits(run_config)}")
    out.print("Sources (format):", *_source_lines(run_config, shown.report), sep="\n")
    out.print(f"Special tokens are shown as they are; {BOUNDARY} marks where the scored tokens begin.")

    def text(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def count(ids: list[int], before: list[int]) -> str:
        return f"{len(ids)} tokens" + (f" ({len(before)} before truncation)" if len(ids) != len(before) else "")

    for number, row in enumerate(shown.rows, 1):
        out.rule(f"{number} of {len(shown.rows)} · {row.origin}", characters="─")
        if row.error:
            out.print(f"cannot be rendered: {row.error}")
            continue
        # What training gets; a dropped row is shown whole.
        kept = row.rendered if not row.rendered["drop"] else {"prompt_ids": row.prompt_ids}
        out.print(f"prompt · {count(kept['prompt_ids'], row.prompt_ids)}")
        out.print(text(kept["prompt_ids"]) + BOUNDARY)
        for name, ids in row.completion_ids.items():
            ids_kept = kept.get(f"{name}_ids", ids)
            label = f" · label: {'desirable' if row.label else 'undesirable'}" if row.label is not None else ""
            out.print(f"{name} · {count(ids_kept, ids)}{label}")
            out.print(BOUNDARY + text(ids_kept))
        out.print(*(f"truncation: {line}" for line in truncation_lines(row, tokenizer, settings)), sep="\n")
    if not shown.rows:
        out.print("No rows to show.")
    if shown.report.bad_rows:
        out.print("Bad rows among those read (training stops on them unless data.skip_bad_rows: true):")
        out.print(*(f"  {message}" for message in shown.report.bad_rows), sep="\n")


@data_app.command(context_settings={"help_option_names": ["-h", "--help"]})
def validate(
    config: ConfigPath, overrides: Overrides = None, dialect: FromOption = None, lenient: LenientOption = False
) -> None:
    """Read and render every row of data.train and data.eval and summarise: rows read per format, rows dropped
    and why, truncation, length percentiles. Exits 1 when a row or source is unusable or no training row is
    left, 0 when the data is ready to train on."""
    from prefalign.data import DataError
    from prefalign.data.check import validate_data

    run_config, tokenizer, out = _data_setup(config, overrides, dialect, lenient)
    try:
        v = validate_data(run_config, tokenizer)
    except (ConfigError, DataError) as exc:  # settings that no row can be read with (no chat template)
        _fail(exc)
    r = v.report
    out.print(f"{config}: model {run_config.model.path} (tokenizer only); {_limits(run_config)}")
    out.print("Sources (format):", *_source_lines(run_config, r), sep="\n")
    formats = ", ".join(f"{name} {count}" for name, count in r.formats.items())
    out.print(f"Rows read: {r.rows_read}" + (f" ({formats})" if formats else ""))
    kinds = {"paired": "pairs", "unpaired": "unpaired rows"}
    usable = ", ".join(f"{count} {kinds[v.kinds[key]]} in {key}" for key, count in v.usable.items())
    out.print(f"Usable: {usable or 'none'}")
    if v.loss:
        out.print(f"Loss: {v.loss}")
    problems = [(f"bad row: {kind}", count) for kind, count in r.bad_row_kinds.items()]
    problems += [(f"dropped: {reason}", count) for reason, count in r.dropped.items()]
    out.print("Unusable or dropped rows:" + ("" if problems else " none"))
    width = max((len(name) for name, _ in problems), default=0)
    for name, count in problems:
        out.print(f"  {name:<{width}}  {count:>7}")
    out.print(f"Truncated (kept, cut to the limits): {r.truncated}")
    if v.lengths:
        out.print("Lengths in tokens before truncation (rows that render):")
        out.print(f"  {'':<10}" + "".join(f"{column:>8}" for column in next(iter(v.lengths.values()))))
        for name, values in v.lengths.items():
            out.print(f"  {name:<10}" + "".join(f"{value:>8}" for value in values.values()))
    if r.bad_rows:
        if run_config.data.skip_bad_rows:
            out.print("Bad rows (training skips them: data.skip_bad_rows is true):")
        else:
            out.print("Bad rows (training stops on these unless data.skip_bad_rows: true):")
        out.print(*(f"  {message}" for message in r.bad_rows[:_SHOWN]), sep="\n")
        if len(r.bad_rows) > _SHOWN:
            out.print(f"  … and {len(r.bad_rows) - _SHOWN} more")
    if r.errors:
        out.print("Errors:", *(f"  {message}" for message in r.errors), sep="\n")
    if r.duplicates:
        done = "skips them" if run_config.data.skip_bad_rows else "uses every copy"
        out.print(f"Duplicates (training {done}; not counted as problems):")
        out.print(*(f"  {message}" for message in r.duplicates[:_SHOWN]), sep="\n")
        if len(r.duplicates) > _SHOWN:
            out.print(f"  … and {len(r.duplicates) - _SHOWN} more")
    if v.problems:
        out.print(f"Result: {v.problems} problem(s); exit status 1")
        raise typer.Exit(1)
    out.print("Result: ready to train")


# --- prefalign export gguf (GGUF export helper) ---------------------------------------------------------------
export_app = typer.Typer(help="Write a trained model in other formats: `gguf` for llama.cpp.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("gguf", context_settings={"help_option_names": ["-h", "--help"]})
def export_gguf_command(
    path: Annotated[Path, typer.Argument(help="A run directory (its merged/ model is read) or a merged HF model.")],
    quant: Annotated[
        list[str],
        typer.Option(
            "--quant",
            "-q",
            help="GGUF type, repeatable: f32, f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m (K-quants need "
            "pip install 'prefalign\\[gguf]').",
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Directory for the files (default: RUN_DIR/gguf).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace GGUF files that exist.")] = False,
) -> None:
    """Convert a model to GGUF files OUT/NAME-QUANT.gguf that llama.cpp, Ollama and LM Studio run."""
    from prefalign.export.gguf import GgufExportError, export_gguf
    from prefalign.export.gguf_arch import GgufArchError
    from prefalign.export.gguf_cli import resolve_export_source

    try:
        model_dir, default_out, name = resolve_export_source(path)
        written = export_gguf(model_dir, out or default_out, name, quant, overwrite=overwrite)
    except (GgufExportError, GgufArchError, OSError) as exc:
        _fail(exc)
    for file in written:
        Console().print(f"wrote {file} ({file.stat().st_size / 2**20:.1f} MiB)", highlight=False)


_SHOWN = 50  # bad rows listed by `data validate`; all are counted


# --- eval and runs (issue 16): thin commands; the work is in prefalign.eval.compare and prefalign.report.runs ---


@app.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
def eval_command(
    model_or_run: Annotated[str, typer.Argument(help="A `prefalign train` run directory, or a model path.")],
    data: Annotated[Path, typer.Option("--data", help="Preference pairs (any format `train` reads).")],
    reference: Annotated[
        str | None, typer.Option("--reference", help="The reference / base model (default: the run's own).")
    ] = None,
    reward_model: Annotated[
        str | None, typer.Option("--reward-model", help="A prefalign reward model (run directory or model path).")
    ] = None,
    prompts: Annotated[
        Path | None, typer.Option("--prompts", help="Prompts to answer (.txt, .json, .jsonl); default: --data's.")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many prompts to answer.")] = 50,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Tokens per answer.")] = 96,
    sample: Annotated[bool, typer.Option("--sample", help="Sampled answers (seeded) instead of greedy ones.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="With --sample: the seed (default 0).")] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="With --sample: the temperature (default 1.0).")
    ] = None,
    top_p: Annotated[
        float | None, typer.Option("--top-p", help="With --sample: nucleus sampling's share (default 1.0: off).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default: RUN_DIR/eval).")] = None,
) -> None:
    """Evaluate a policy against its reference on preference pairs, answer prompts with the base and the aligned
    model side by side (greedy, or seeded sampling with --sample), and with --reward-model give the win rate of
    aligned over base. Writes eval.json, eval.jsonl and eval.html."""
    from prefalign.data import DataError
    from prefalign.eval.compare import evaluate
    from prefalign.eval.sampling import sampling_from_options

    try:
        sampling = sampling_from_options(sample, seed=seed, temperature=temperature, top_p=top_p)
        result = evaluate(
            model_or_run, data, reference=reference, reward_model=reward_model, prompts=prompts, n=n,
            max_new_tokens=max_new_tokens, sampling=sampling, out=out,
        )  # fmt: skip
    except (ConfigError, DataError, OSError) as exc:
        _fail(exc)
    console = Console()
    table = Table("metric", "value", title="prefalign eval")
    for name, value in {**result.pairs, **result.rewards}.items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"{len(result.answers)} answers side by side; written to {result.out_dir}/eval.json, eval.jsonl, "
                  "eval.html", highlight=False)  # fmt: skip


@app.command("runs", context_settings={"help_option_names": ["-h", "--help"]})
def runs_command(
    directory: Annotated[Path, typer.Argument(help="Where the runs are.")] = Path("runs"),
    compare: Annotated[
        list[Path] | None, typer.Option("--compare", help="Runs whose curves to overlay (repeat, or list them).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="The comparison page.")] = Path("compare.html"),
) -> None:
    """A table of the runs under DIRECTORY (method, data, steps, held-out accuracy before → after, margin, time,
    warnings); with --compare A --compare B, an HTML page with their curves overlaid."""
    from prefalign.report.rundir import ReportError, read_run
    from prefalign.report.runs import find_runs, run_row, write_compare

    try:
        if compare:
            page = write_compare([read_run(path) for path in compare], out)
            Console().print(f"Wrote {page}", highlight=False)
            return
        runs = find_runs(directory)
    except ReportError as exc:
        _fail(exc)
    table = Table("run", "method", "data", "steps", "accuracy", "margin", "time", "warnings", "status")
    for r in map(run_row, runs):
        accuracy = f"{_num(r.accuracy_before)} → {_num(r.accuracy_after)}"
        time = f"{int(r.seconds) // 60}m{int(r.seconds) % 60:02d}s" if r.seconds is not None else "—"
        table.add_row(r.name, r.method, r.data, str(r.steps), accuracy, _num(r.margin), time, str(r.warnings), r.status)
    console = Console()
    if not console.is_terminal:  # piped: one line per run, nothing cut
        console = Console(width=250)
    console.print(table if runs else f"No prefalign runs under {directory}")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# ---- prefalign merge (export/merge.py) ----


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def merge(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with a saved adapter/ (output.dir).")],
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="bf16, fp16 or fp32; default the run's model.dtype.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write; default RUN_DIR/merged.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
) -> None:
    """Merge a run's LoRA adapter into its base model: a transformers model directory (safetensors + tokenizer).

    A quantised (QLoRA) run's base is dequantised to the dtype first and the adapter added in full precision.
    """
    from prefalign.export.merge import merge_run

    try:
        target = merge_run(run_dir, dtype=dtype, out=out, overwrite=overwrite)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    Console().print(f"Merged model written to [bold]{target}[/bold]")


# --- prefalign plan (memory) ---------------------------------------------------------------------


@app.command(name="plan", context_settings={"help_option_names": ["-h", "--help"]})
def plan_command(config: ConfigPath, overrides: Overrides = None) -> None:
    """Print the run's memory plan without training: peak memory per process (weights, gradients, optimizer
    state, reference, activations, LM-head chunk) for the heaviest micro-batch of the tokenised data, the
    budget, and what train.memory: auto would choose. Reads the model's config and the tokenizer, never its
    weights. Exits 1 when the run cannot fit."""
    import datasets

    from prefalign.data import DataError, prepare_data
    from prefalign.memory.display import plan_table
    from prefalign.memory.run import plan_for_config

    run_config, tokenizer, _ = _data_setup(config, overrides)
    datasets.disable_progress_bars()
    console = Console(highlight=False)
    try:
        data = prepare_data(run_config.data, tokenizer, run_config.train.seed, method=run_config.method)
        run_plan = plan_for_config(run_config, data.train, tokenizer.pad_token_id)
    except ConfigError as exc:  # nothing fits: the fixes are in the message
        err.print(f"[red]does not fit:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except DataError as exc:
        _fail(exc)
    console.print(f"{config}: model {run_config.model.path} (config only, no weights)")
    console.print(plan_table(run_plan))
    console.print(f"train.memory {run_config.train.memory}: {run_plan.message}", soft_wrap=True)
    if not run_plan.fits:
        raise typer.Exit(1)


def main() -> None:
    app()
