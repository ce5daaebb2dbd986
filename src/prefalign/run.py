"""`prefalign.train(config)`: one run from config to adapter, merged model, model card and summary."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import transformers
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list, gather_object
from rich.console import Console
from rich.table import Table
from torch import nn

from prefalign.atomic import write_json_atomically, write_text_atomically
from prefalign.config import ConfigError, RunConfig, load_config
from prefalign.data import DataReport, PreparedData, data_kind, prepare_data
from prefalign.data.layout import Batch
from prefalign.data.render import Renderer, render_settings
from prefalign.data.templates import TEMPLATES, chat_template_for
from prefalign.eval.evaluate import generate
from prefalign.eval.probe import OWN_ANSWER_TOKENS, PROBE_SEED, general_nll, own_answer_rows, probe_batch
from prefalign.eval.rewards import held_out_rewards
from prefalign.export.card import model_card
from prefalign.export.gguf_run import check_gguf_output, write_run_gguf
from prefalign.export.save import merged_model, save_adapter, save_merged
from prefalign.memory.allocator import return_freed_memory
from prefalign.memory.display import plan_table
from prefalign.memory.plan import apply_choice
from prefalign.memory.run import plan_for_config
from prefalign.model.attention import resolve_layout, resolve_pack_length
from prefalign.model.load import (
    apply_train_options,
    load_base,
    load_output_embeddings,
    load_policy,
    load_reward_model,
    load_tokenizer,
    resolve_path,
    use_reward_pad_token,
)
from prefalign.model.reference import build_reference
from prefalign.model.reference_cache import precomputed_reference
from prefalign.objective import make_objective
from prefalign.report.lengths import length_percentiles
from prefalign.report.listener import ReportListener
from prefalign.report.trackers import TrackerListener, check_trackers
from prefalign.scoring.logps import SequenceScorer
from prefalign.scoring.reward_model import RewardScorer, ties_lm_head
from prefalign.training import deepspeed_zero
from prefalign.training.checkpoint import check_resume_layout, skipped_checkpoints
from prefalign.training.distributed import (
    check_one_group,
    distribution,
    memory_sharding,
    unwrap_prepared,
    use_cpu_group_if_needed,
)
from prefalign.training.events import Events
from prefalign.training.fsdp import full_state_on_main, sharded_layers
from prefalign.training.listeners import FindingsFile, GeneralNllListener, ProgressDisplay, WatchListener
from prefalign.training.loop import Training, fit, held_out_metrics
from prefalign.training.metrics import MetricsLog
from prefalign.training.precision import resolve_precision
from prefalign.training.watch import GeneralNllWatch, LikelihoodWatch

RUN_MARKER = ".prefalign-run"
PROBE_ANSWERS_FILE = "probe.json"  # the general-text probe's answers (eval/probe.py)


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    seconds: float
    before: dict[str, float] | None
    after: dict[str, float]
    last_train: dict[str, float]
    generations: list[dict] = field(default_factory=list)  # {"prompt", "before", "after"}
    saved: dict[str, str] = field(default_factory=dict)  # what was written: adapter / merged / "gguf q4_k_m" -> path
    warnings: list[str] = field(default_factory=list)  # training.watch findings, "step N: ..."
    reference_mode: str = ""  # what reference.mode resolved to (auto -> adapter, precomputed, ...)
    processes: int = 1
    # how: accelerate's distributed type, processes, backend, sharding (training.distributed.distribution)
    distributed: dict = field(default_factory=dict)
    # rows read, and the unusable ones skipped (data.skip_bad_rows) and repeated ones, as counts (data.json lists them)
    data: dict[str, int] = field(default_factory=dict)
    ignored_checkpoints: list[str] = field(default_factory=list)  # incomplete ones a resumed run passed over
    skipped_steps: list[int] = field(default_factory=list)  # non-finite steps left out (train.on_nonfinite: skip_step)
    memory: dict | None = None  # the memory plan and what train.memory chose (memory.plan.RunPlan.as_dict)


def prepare_run_dir(config: RunConfig) -> Path:
    """Create the run directory; refuse to clobber anything that is not our own earlier run."""
    run_dir = Path(config.output.dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        ours = (run_dir / RUN_MARKER).is_file()
        if config.train.resume:
            if not ours:
                raise ConfigError(f"train.resume: {run_dir} is not a prefalign run directory")
        elif config.output.overwrite:
            if not ours:
                raise ConfigError(
                    f"output.overwrite: {run_dir} holds files that are not a prefalign run; refusing to delete them"
                )
            shutil.rmtree(run_dir)
        else:
            raise ConfigError(
                f"output.dir: {run_dir} exists and is not empty; set output.overwrite: true to replace it "
                "or train.resume: true (--resume) to continue it"
            )
    try:  # before any model loads: a directory that cannot be written fails the run now, not after training
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_MARKER).touch()
        (run_dir / "config.yaml").write_text(config.to_yaml())
        if config.import_table is not None:  # translated from another tool's config: what became of each key
            write_text_atomically(run_dir / "config-import.md", config.import_table.markdown())
    except OSError as exc:
        raise ConfigError(
            f"output.dir: cannot write {exc.filename or run_dir}: {exc.strerror or exc}; choose a directory you "
            "can write (output.dir=...) or fix its permissions"
        ) from None
    return run_dir


def _sample_prompts(config: RunConfig, data: PreparedData, tokenizer) -> list[tuple[str, list[int]]]:
    """(text, token ids) of the first held-out prompts, for before/after answers."""
    rows = data.eval_prompts
    if rows is None or config.eval.generations == 0 or config.method.kind == "reward":  # reward models do not generate
        return []
    renderer = Renderer(tokenizer, render_settings(config.data))  # prompts only: no completion is cut
    picked: dict[str, tuple[str, list[int]]] = {}  # by prompt: unpaired rows (split pairs) repeat prompts
    for row in rows.select(range(min(len(rows), 4 * config.eval.generations))):
        key = json.dumps(row["prompt"])
        if key not in picked and len(picked) < config.eval.generations:
            picked[key] = (
                row["prompt"][-1]["content"],
                renderer.prompt_ids(row["prompt"], row["plain"], row.get("tools")),
            )
    return list(picked.values())


def _trained_model(config: RunConfig, tokenizer, device) -> tuple[nn.Module, SequenceScorer]:
    """The model to train, and the scorer that runs it: a policy's log-probs, or a reward model's rewards."""
    options = {
        "gradient_checkpointing": config.train.gradient_checkpointing,
        "compile": config.train.compile,
        "fused_mlp": config.train.fused_mlp,
        # On a CPU the activations are in CPU memory already (the memory stage says the option has no effect).
        "activation_offload": "cuda" if config.train.activation_offload and device.type == "cuda" else None,
    }
    # A compiled model gets the masked layouts as a dense mask: the segment attention's block list changes with
    # every batch, and each new one would recompile.
    segments = not config.train.compile
    if config.method.kind == "policy":
        policy = load_policy(config.model, autocast=config.train.mixed_precision in ("bf16", "fp16")).to(device)
        apply_train_options(policy, **options)
        return policy, SequenceScorer(policy, segment_attention=segments)
    model = load_reward_model(config.model, use_reward_pad_token(tokenizer)).to(device)
    apply_train_options(model, **options)
    lm_head = None
    if config.method.lm_coef > 0 and not ties_lm_head(model):
        lm_head = load_output_embeddings(config.model).to(device)
    return model, RewardScorer(model, lm_head=lm_head, segment_attention=segments)


class Run:
    """One training run as named stages; each takes what the earlier ones left on the run and can be called alone.

    setup → data → memory → resumable → models → reference → before → fit → after → export → summary
    """

    def __init__(self, config: RunConfig, console: Console | None = None) -> None:
        self.config = config
        self.console = console or Console()
        self.started = time.perf_counter()
        self.saved: dict[str, str] = {}

    def stages(self) -> list[Callable[[], None]]:
        return [
            self.setup, self.data, self.memory, self.resumable, self.models, self.reference, self.before, self.fit,
            self.after, self.export, self.summary,
        ]  # fmt: skip

    def setup(self) -> None:
        """Library state, precision, the accelerator, the run directory and the seed."""
        config = self.config
        # before accelerate's state: several processes on CPUs form one gloo group (DeepSpeed's included)
        cpu, backend = use_cpu_group_if_needed()
        group = {"backend": backend} if backend else {}
        quiet_libraries()
        precision, note = resolve_precision(config.train.mixed_precision, PartialState(cpu=cpu, **group).device)
        config.train.mixed_precision = precision  # what config.yaml, the reference cache and the card record
        handlers = [InitProcessGroupKwargs(**group)] if group else None
        self.accelerator = accelerator = Accelerator(mixed_precision=precision, cpu=cpu, kwargs_handlers=handlers)
        check_one_group(accelerator.num_processes)
        # DeepSpeed: what prefalign does not do there is refused before any weight loads; its `auto` settings filled
        deepspeed_zero.check_settings(accelerator, config.train, config.method)
        self.is_main = accelerator.is_main_process
        if note and self.is_main:
            self.console.print(f"[yellow]{note}[/yellow]")
        if config.model.attention == "flex_attention" and accelerator.device.type == "cpu":
            raise ConfigError(
                "model.attention: flex_attention cannot train on CPU: torch has no FlexAttention backward there; use "
                "sdpa (the default: prefalign's segment attention skips the same masked blocks)"
            )
        check_trackers(config.output.report_to)  # a missing tracker package stops the run before anything loads
        check_gguf_output(config)  # output.gguf for an architecture or tokenizer it cannot write: fail now
        self.run_dir = prepare_run_dir(config) if self.is_main else Path(config.output.dir)
        if config.import_table is not None and self.is_main:
            table = config.import_table
            self.console.print(f"{table.source}: read as a {table.dialect} config; what became of each key: "
                               f"{self.run_dir / 'config-import.md'}", highlight=False)  # fmt: skip
        accelerator.wait_for_everyone()
        transformers.set_seed(config.train.seed)

    def data(self) -> None:
        """The tokenizer and the tokenised train and held-out splits; the prompts answered before and after."""
        config = self.config
        self.tokenizer = load_tokenizer(config.model)
        self.prepared = prepare_data(config.data, self.tokenizer, config.train.seed, method=config.method)
        if config.data.template in TEMPLATES:  # the saved tokenizer answers in the format the model was trained on
            self.tokenizer.chat_template = chat_template_for(config.data.template, self.tokenizer)
        self.prompts = _sample_prompts(config, self.prepared, self.tokenizer)
        if self.is_main:
            _print_data(self.console, self.prepared, config.data.skip_bad_rows)
            data = asdict(self.prepared.report)
            data["train"] = len(self.prepared.train)
            data["eval"] = len(self.prepared.eval) if self.prepared.eval is not None else 0
            data["lengths"] = length_percentiles({"train": self.prepared.train, "eval": self.prepared.eval})
            write_json_atomically(self.run_dir / "data.json", data)

    def memory(self) -> None:
        """The memory plan (`prefalign plan`), before any weight loads: printed, kept for result.json; with
        train.memory auto the micro-batch and checkpointing that fit the budget, or a ConfigError naming the fixes."""
        config, accelerator = self.config, self.accelerator
        if accelerator.device.type == "cpu":
            return_freed_memory()  # freed tensors leave the resident set (memory/allocator.py: -33% peak measured)
        self.memory_plan = plan_for_config(
            config, self.prepared.train, self.tokenizer.pad_token_id, device=accelerator.device,
            world=accelerator.num_processes, sharding=memory_sharding(config.train.fsdp, accelerator),
        )  # fmt: skip
        apply_choice(config, self.memory_plan)
        if self.is_main:
            self.console.print(plan_table(self.memory_plan))
            self.console.print(f"train.memory {config.train.memory}: {self.memory_plan.message}", highlight=False)

    def resumable(self) -> None:
        """train.resume: refuse, before any weight loads, a checkpoint whose steps took another number of examples
        than this launch's (batch_size × grad_accum × processes, after train.memory's choice); another number of
        processes with the same examples a step continues on the same data order, and is said."""
        config, accelerator = self.config, self.accelerator
        if not config.train.resume:
            return
        world = accelerator.num_processes
        launch = f"{world} process(es) × batch_size {config.train.batch_size} × grad_accum {config.train.grad_accum}"
        examples = config.train.batch_size * config.train.grad_accum * world
        note = check_resume_layout(self.run_dir / "checkpoints", world, examples, launch)
        if note and self.is_main:
            self.console.print(f"resume: {note}", highlight=False)

    def models(self) -> None:
        """The trained model (a policy or a reward model), the scorer that runs it, and the objective."""
        config = self.config
        self.model, self.scorer = _trained_model(config, self.tokenizer, self.accelerator.device)
        self.objective = make_objective(
            config.method,
            layout=resolve_layout(config.data.layout, self.scorer.model),
            pack_length=resolve_pack_length(config.data.pack_length, self.scorer.model),
        )

    def reference(self) -> None:
        """The reference strategy: none, the adapter switched off, a frozen model, or precomputed log-probs."""
        config, accelerator = self.config, self.accelerator
        self.reference_mode = mode = config.resolved_reference_mode(len(self.prepared.train), accelerator.num_processes)
        reference_model = None
        if mode == "model":
            reference_model = load_base(config.model, config.reference.path) if config.reference.path else None
            if reference_model is None:  # a frozen copy of the starting policy
                reference_model = load_policy(config.model.model_copy(update={"lora": None}))
            reference_model.to(accelerator.device)
        if mode == "precomputed":  # before training: the reference is the starting policy or reference.path
            splits = {"train": self.prepared.train, "eval": self.prepared.eval}
            pad_id = self.tokenizer.pad_token_id
            self.ref = precomputed_reference(
                config.model,
                config.reference.path,
                self.scorer,
                lambda examples: self.objective.batch(examples, pad_id),
                self.objective.logps_options,
                splits,
                batch_size=config.train.eval_batch_size or config.train.batch_size,
                precision=config.train.mixed_precision,
                accelerator=accelerator,
            )
            if self.is_main:
                self.console.print(self.ref.summary())
        else:
            self.ref = build_reference(mode, self.scorer, reference_model, self.objective.logps_options)
        self.training = Training(
            self.scorer, self.ref, self.objective, self.prepared.train, self.prepared.eval, self.tokenizer.pad_token_id,
            probe=self._probe(),
        )  # fmt: skip

    def _probe(self) -> Batch | None:
        """The general-text probe for a policy run with held-out data: the starting policy's own answers to its
        questions (eval/probe.py), sampled once by the main process and kept in RUN_DIR/probe.json (a resumed
        run reads them back), rendered as the run renders its data."""
        config = self.config
        if config.method.kind != "policy" or self.prepared.eval is None:
            return None
        renderer = Renderer(self.tokenizer, render_settings(config.data))
        saved = self.run_dir / PROBE_ANSWERS_FILE
        if config.train.resume and saved.is_file():
            rows = json.loads(saved.read_text())["rows"]
        else:
            rows = None
            if self.is_main:
                with self.accelerator.autocast():
                    rows = own_answer_rows(self.model, renderer)
                write_json_atomically(saved, {"seed": PROBE_SEED, "max_new_tokens": OWN_ANSWER_TOKENS, "rows": rows})
            rows = broadcast_object_list([rows])[0]  # every process scores the answers the main one sampled
        return probe_batch(renderer, self.tokenizer.pad_token_id, rows)

    def before(self) -> None:
        """Held-out metrics and answers before training; a resumed run reads the ones it saved."""
        config, accelerator = self.config, self.accelerator
        before_file = self.run_dir / "before.json"
        self.before_metrics, self.before_answers = None, []
        if config.train.resume and before_file.is_file():
            saved = json.loads(before_file.read_text())
            self.before_metrics, self.before_answers = saved["metrics"], saved["answers"]
            return
        if not config.eval.before:
            return
        # Outside the loop the model is not wrapped by accelerate yet: autocast by hand.
        with accelerator.autocast():
            if self.prepared.eval is not None:
                batch_size = config.train.eval_batch_size or config.train.batch_size
                self.before_metrics = held_out_metrics(accelerator, self.scorer, self.training, batch_size)
            self.before_answers = self._answers(self.model)
            self._held_out_rewards("before")
        if self.is_main:
            before = {"metrics": self.before_metrics, "answers": self.before_answers}
            before_file.write_text(json.dumps(before, indent=1))

    def fit(self) -> None:
        """The training loop, with the metrics log, the progress display and the likelihood watch listening."""
        accuracy, margin = self.objective.headline
        self.ignored_checkpoints = []
        if self.config.train.resume:  # a checkpoint cut short by a kill or a full disk is passed over, and said so
            self.ignored_checkpoints = skipped_checkpoints(self.run_dir / "checkpoints")
            for message in self.ignored_checkpoints if self.is_main else ():
                self.console.print(f"[yellow]resume: ignoring {message}[/yellow]")
        events = Events([MetricsLog(self.run_dir / "metrics.jsonl", enabled=self.is_main)])
        with ProgressDisplay(self.console, self.objective.headline, enabled=self.is_main) as progress:
            events.add(progress, FindingsFile(self.run_dir / "warnings.jsonl", enabled=self.is_main))
            self.watch = None
            # Rewards relative to a reference show whether the chosen answers gain or only the rejected ones lose.
            if self.objective.needs_reference and margin == "rewards/margins":
                self.watch = WatchListener(LikelihoodWatch(accuracy), report=events.finding)
                events.add(self.watch)
            # The report is redrawn at every eval and at the end; the trackers get every record.
            self.report = ReportListener(self.run_dir, enabled=self.is_main)
            events.add(self.report, *self._trackers())
            # The probe's NLL against the policy's before training (scored by `before`, else here).
            self.general_watch = None
            if self.training.probe is not None:
                base = (self.before_metrics or {}).get("general_nll")
                if base is None:
                    with self.accelerator.autocast():
                        base = general_nll(self.scorer, self.training.probe)
                self.general_watch = GeneralNllListener(GeneralNllWatch(base), report=events.finding)
                events.add(self.general_watch)
            self.loop = fit(self.training, self.config.train, self.accelerator, self.run_dir, events)
        del self.training, self.ref  # the reference (a model, or cached log-probs) is not needed any more
        self.sharding = None
        if layers := sharded_layers(self.scorer):  # rank 0 answers and exports from the full weights, unsharded
            self.sharding = f"FSDP2 per decoder layer, applied by prefalign ({layers} layers)"
            # accelerate holds the optimizer (its state, 2× the trained weights under AdamW) until told to let go:
            # freed before the full weights are gathered and rank 0 rebuilds the model
            self.accelerator.free_memory()
            self.model = self._unsharded_copy(full_state_on_main(self.scorer))
            return
        if deepspeed_zero.zero_stage(self.accelerator) == 3:  # the same, gathered from DeepSpeed's partitions
            self.model = self._unsharded_copy(deepspeed_zero.full_state_on_main(self.accelerator))
            return
        self.model = unwrap_prepared(self.accelerator, self.scorer).model

    def _unsharded_copy(self, state: dict) -> nn.Module | None:
        """Rank 0: the trained model rebuilt unsharded (on the CPU) from the gathered `state`; other ranks: None
        (only rank 0 answers the prompts and writes the outputs)."""
        if not self.is_main:
            return None
        _, scorer = _trained_model(self.config, self.tokenizer, "cpu")
        scorer.load_state_dict(state)
        return scorer.model.to(self.accelerator.device)

    def after(self) -> None:
        """Answers to the same held-out prompts after training, beside the ones before."""
        with self.accelerator.autocast():
            after_answers = self._answers(self.model) if self.model is not None else []
            self._held_out_rewards("after")
        if self.model is None:  # a sharded run's other processes: rank 0 answers from the full weights
            self.generations = []
            return
        before_answers = self.before_answers or [""] * len(self.prompts)
        self.generations = [
            {"prompt": text, "before": before, "after": after}
            for (text, _), before, after in zip(self.prompts, before_answers, after_answers, strict=True)
        ]

    def export(self) -> None:
        """The adapter and/or the merged model, and GGUF files from the merged one, written by the main process."""
        save, run_dir = self.config.output.save, self.run_dir
        if self.is_main and "adapter" in save:
            self.saved["adapter"] = str(save_adapter(self.model, self.tokenizer, run_dir / "adapter"))
        if self.is_main and "merged" in save:
            self.saved["merged"] = str(save_merged(merged_model(self.model), self.tokenizer, run_dir / "merged"))
        if self.is_main and self.config.output.gguf:  # from the merged model just written (validation requires it)
            for path in write_run_gguf(self.config, run_dir, run_dir / "merged"):
                self.saved[f"gguf {path.stem.rsplit('-', 1)[-1].lower()}"] = str(path)
        self.accelerator.wait_for_everyone()

    def summary(self) -> None:
        """The model card, the answers, result.json and the summary printed at the end."""
        config, loop = self.config, self.loop
        self.result = RunResult(
            run_dir=self.run_dir,
            steps=loop.state.step,
            seconds=time.perf_counter() - self.started,
            before=self.before_metrics,
            after=loop.last_eval,
            last_train=loop.last_train,
            generations=self.generations,
            saved=self.saved,
            warnings=[str(f) for watch in (self.watch, self.general_watch) if watch for f in watch.findings],
            reference_mode=self.reference_mode,
            processes=self.accelerator.num_processes,
            distributed=distribution(self.accelerator, self.sharding),
            data=_data_counts(self.prepared.report),
            ignored_checkpoints=self.ignored_checkpoints,
            skipped_steps=loop.skipped_steps,
            memory=self.memory_plan.as_dict(),
        )
        if not self.is_main:
            return
        final = loop.last_eval or loop.last_train
        card = model_card(
            config, final, self.before_metrics, loop.state.step, self.reference_mode, self.result.distributed
        )
        (self.run_dir / "README.md").write_text(card)
        if config.method.kind == "policy":
            answers = json.dumps(self.generations, indent=1, ensure_ascii=False)
            (self.run_dir / "generations.json").write_text(answers)
        result = json.dumps(asdict(self.result), indent=1, default=str, ensure_ascii=False)
        (self.run_dir / "result.json").write_text(result)
        self.report.render()  # the finished page: result.json and the answers are there now
        print_summary(self.console, config, self.result)

    def _trackers(self) -> list[TrackerListener]:
        output = self.config.output
        if not output.report_to or not self.is_main:
            return []
        name = output.run_name or self.run_dir.name
        return [TrackerListener(output.report_to, name, self.run_dir, self.config.model_dump(mode="json"))]

    def _held_out_rewards(self, when: str) -> None:
        """A reward model's rewards of the held-out answers (report.html's histogram): rewards.json[when]."""
        if self.config.method.kind != "reward" or self.prepared.eval is None:
            return
        accelerator = self.accelerator
        batch_size = self.config.train.eval_batch_size or self.config.train.batch_size
        own = held_out_rewards(
            self.scorer, self.objective, self.prepared.eval, batch_size, self.tokenizer.pad_token_id,
            accelerator.device, rank=accelerator.process_index, world=accelerator.num_processes,
        )  # fmt: skip
        shares = gather_object([own])
        if self.is_main:
            path = self.run_dir / "rewards.json"
            saved = json.loads(path.read_text()) if path.is_file() else {}
            saved[when] = {name: [v for share in shares for v in share[name]] for name in ("chosen", "rejected")}
            write_json_atomically(path, saved)

    def _answers(self, model: nn.Module) -> list[str]:
        return generate(model, self.tokenizer, [ids for _, ids in self.prompts], self.config.eval.max_new_tokens)


def quiet_libraries() -> None:
    """Silence what says nothing to our users, and reset accelerate's per-run state for a new run."""
    transformers.logging.set_verbosity_error()
    # peft still calls a transformers property deprecated in 5.x; the warning says nothing to our users.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # The run shows its own progress; transformers' weight-loading and datasets' map bars only add noise to it.
    datasets.disable_progress_bars()
    transformers.logging.disable_progress_bar()
    # accelerate keeps one process-wide state and refuses a second run in the same Python process (a notebook,
    # a sweep, the tests) another precision; reset the per-run part and keep the process group.
    AcceleratorState._reset_state(reset_partial_state=False)


def train(
    config: RunConfig | dict | str | Path, overrides: list[str] | tuple[str, ...] = (), *, quiet: bool = False
) -> RunResult:
    """Train one run from a config object, dict or YAML path (prefalign's, or another tool's: prefalign.dialects),
    with optional `key=value` overrides. With no loss named, the loss follows the data (unpaired rows: kto)."""
    config = load_config(config, overrides)
    run = Run(config.for_data(data_kind(config.data)), Console(quiet=quiet))
    for stage in run.stages():
        stage()
    return run.result


def _data_counts(report: DataReport) -> dict[str, int]:
    return {
        "rows_read": report.rows_read,
        "bad_rows_skipped": len(report.bad_rows),
        "duplicates": len(report.duplicates),
        "dropped": sum(report.dropped.values()),
        "truncated": report.truncated,
    }


def _print_data(console: Console, data: PreparedData, skip_bad_rows: bool) -> None:
    r = data.report
    formats = ", ".join(f"{name} ({count})" for name, count in r.formats.items())
    line = f"Data: {len(data.train)} training {'pairs' if data.paired else 'unpaired rows'}"
    line += f", {len(data.eval)} held out" if data.eval is not None else ", no held-out split"
    line += f"; {r.rows_read} rows read as {formats}"
    if r.bad_rows:
        line += f"; {len(r.bad_rows)} bad rows skipped (data.json lists them)"
    if r.duplicates:
        line += f"; {len(r.duplicates)} repeated rows {'skipped' if skip_bad_rows else 'kept'} (data.json lists them)"
    if r.dropped:
        line += "; dropped: " + ", ".join(f"{n} ({why})" for why, n in r.dropped.items())
    if r.truncated:
        line += f"; {r.truncated} truncated"
    console.print(line)


def _fmt(metrics: dict[str, float] | None, name: str) -> str:
    return "—" if not metrics or name not in metrics else f"{metrics[name]:.3f}"


_SUMMARY_ROWS = {  # the held-out metrics the summary shows, by what was trained: (metric, label)
    "reward": (
        ("accuracy", "accuracy (r_chosen > r_rejected)"),
        ("margin", "reward margin (r_chosen − r_rejected)"),
        ("mean_reward", "mean reward"),
        ("loss", "loss"),
    ),
    "paired": (
        ("preference_accuracy", "preference accuracy (length-normalised)"),
        ("rewards/margins", "reward margin"),
        ("rewards/accuracies", "reward accuracy"),
        ("loss", "loss"),
    ),
    "unpaired": (  # no pair to rank, so each reward against its label
        ("label_accuracy", "label accuracy (reward > 0 desirable, < 0 undesirable)"),
        ("rewards/chosen", "reward of desirable answers"),
        ("rewards/rejected", "reward of undesirable answers"),
        ("rewards/margins", "reward margin"),
        ("kl", "KL estimate (kto's reference point)"),
        ("loss", "loss"),
    ),
}


def print_summary(console: Console, config: RunConfig, run: RunResult) -> None:
    minutes, seconds = divmod(int(run.seconds), 60)
    console.rule(f"[bold]prefalign: {run.steps} steps in {minutes}m{seconds:02d}s")
    table = Table(show_header=True, header_style="bold")
    table.add_column("held-out metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    reward_model = config.method.kind == "reward"
    rows = _SUMMARY_ROWS["reward" if reward_model else "paired" if config.method.paired else "unpaired"]
    for name, label in rows:
        table.add_row(label, _fmt(run.before, name), _fmt(run.after, name))
    console.print(table)
    margin = "margin" if reward_model else "rewards/margins"
    if run.last_train:
        last = run.last_train
        # a skipped non-finite step logs no loss (NaN values are left out of the means)
        line = f"Last training step: loss {last.get('loss', float('nan')):.4f}"
        if margin in last:  # a step of unpaired rows with one label only has no margin
            line += f", reward margin {last[margin]:.3f}"
        console.print(line)
    for warning in run.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if run.skipped_steps:
        steps = ", ".join(map(str, run.skipped_steps))
        console.print(
            f"[yellow]warning:[/yellow] {len(run.skipped_steps)} step(s) skipped, loss or gradients not finite: {steps}"
        )
    for i, g in enumerate(run.generations, 1):
        console.print(f"\n[bold]Held-out prompt {i}:[/bold] {g['prompt']}")
        console.print(f"[dim]before:[/dim] {g['before']}")
        console.print(f"[green]after:[/green]  {g['after']}")
    console.print(f"\nRun directory: [bold]{run.run_dir}[/bold]")
    if reward_model:
        _print_reward_loading(console, config, run)
        return
    if "adapter" in run.saved:
        base = resolve_path(config.model.path)
        console.print(
            "Load the adapter:  PeftModel.from_pretrained("
            f"AutoModelForCausalLM.from_pretrained({base!r}), {run.saved['adapter']!r})"
        )
    if "merged" in run.saved:
        console.print(f"Load the merged model:  AutoModelForCausalLM.from_pretrained({run.saved['merged']!r})")
    for key, path in run.saved.items():
        if key.startswith("gguf "):
            console.print(f"Run in llama.cpp:  llama-cli -m {path} -cnv")


def _print_reward_loading(console: Console, config: RunConfig, run: RunResult) -> None:
    loader = "AutoModelForSequenceClassification.from_pretrained"
    if "adapter" in run.saved:
        adapter = run.saved["adapter"]
        # The base's config has its own pad_token_id (often the EOS); the reward is read before the last padding.
        console.print(
            f"Load the adapter:  tokenizer = AutoTokenizer.from_pretrained({adapter!r}); PeftModel.from_pretrained("
            f"{loader}({resolve_path(config.model.path)!r}, num_labels=1, pad_token_id=tokenizer.pad_token_id), "
            f"{adapter!r})"
        )
    if "merged" in run.saved:
        console.print(f"Load the reward model:  {loader}({run.saved['merged']!r})")
