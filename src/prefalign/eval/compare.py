"""`prefalign eval`: a trained policy against its reference on preference pairs, its answers beside the base
model's, and (with a reward model) which of the two answers the reward model prefers.

MODEL_OR_RUN is a `prefalign train` run directory (its adapter or merged model is the policy and its own
reference, the base model or reference.path, is the reference) or a model path (then --reference names the
reference; without one the implicit-reward metrics are left out). Everything is written to --out
(default RUN_DIR/eval, or ./eval for a model path): eval.json, eval.jsonl (one line per prompt), eval.html.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from prefalign.atomic import write_json_atomically, write_text_atomically
from prefalign.config import ConfigError, RunConfig, load_config
from prefalign.report.page import Raw, document, esc, pre, table
from prefalign.report.rundir import is_run_dir

PAIR_METRICS = ("preference_accuracy", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


@dataclass
class Target:
    """What is evaluated: the run's config (or one made for a bare model), the policy path and the reference's."""

    config: RunConfig
    policy: str  # a merged model directory or model path; or the base when `adapter` is set
    adapter: str | None
    reference: str | None
    run_dir: Path | None = None


@dataclass
class EvalResult:
    pairs: dict[str, float] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)  # prompt, base, aligned (+ rewards)
    rewards: dict[str, float] = field(default_factory=dict)  # mean rewards, win rate, ties
    out_dir: Path | None = None


def resolve_target(model_or_run: str, data: Path, reference: str | None) -> Target:
    path = Path(model_or_run)
    source = {"path": str(data), "format": "auto"}
    if path.is_dir() and is_run_dir(path):
        raw = yaml.safe_load((path / "config.yaml").read_text())
        raw["data"] = {**raw["data"], "train": [source], "eval": [source], "eval_fraction": 0.0}
        raw["output"] = {**raw.get("output", {}), "dir": str(path), "report_to": []}
        config = load_config(raw)
        if config.method.kind != "policy":
            raise ConfigError(f"{path}: a reward model run; pass it as --reward-model, and a policy as MODEL_OR_RUN")
        if (path / "adapter").is_dir():
            policy, adapter = config.model.path, str(path / "adapter")
        elif (path / "merged").is_dir():
            policy, adapter = str(path / "merged"), None
        else:
            raise ConfigError(f"{path}: this run saved no adapter/ or merged/ model to evaluate")
        ref = reference or config.reference.path or config.model.path
        return Target(config, policy, adapter, ref, path)
    if path.is_dir() and (path / "config.yaml").is_file() and not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not a prefalign run directory (no .prefalign-run file) nor a model directory")
    config = load_config({"model": {"path": model_or_run, "lora": None}, "data": {"train": [source], "eval": [source]}})
    return Target(config, model_or_run, None, reference)


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


def _load_causal(path: str, adapter: str | None, config: RunConfig, device) -> torch.nn.Module:
    from prefalign.model.load import load_base

    model = load_base(config.model, path)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.to(device).eval()


def pair_metrics(target: Target, policy, reference_model, tokenizer, prepared, device) -> dict[str, float]:
    """Preference accuracy of the policy; with a reference, implicit-reward accuracy and margin against it."""
    from prefalign.eval.evaluate import evaluate_held_out
    from prefalign.model.attention import resolve_layout, resolve_pack_length
    from prefalign.model.reference import build_reference
    from prefalign.objective import make_objective
    from prefalign.scoring.logps import SequenceScorer

    method = target.config.method
    if not method.paired:
        raise ConfigError("prefalign eval: --data must hold preference pairs (prompt, chosen, rejected)")
    mode = "model" if reference_model is not None and method.needs_reference else "none"
    if method.needs_reference and reference_model is None:
        method = method.model_copy(update={"loss": "simpo"})  # preference accuracy needs no reference
    layout = resolve_layout(target.config.data.layout, policy)
    pack_length = resolve_pack_length(target.config.data.pack_length, policy)
    objective = make_objective(method, layout=layout, pack_length=pack_length)
    scorer = SequenceScorer(policy)
    reference = build_reference(mode, scorer, reference_model, objective.logps_options)
    sums = evaluate_held_out(scorer, reference, prepared.train, objective, 8, tokenizer.pad_token_id, device)
    means = sums.means()
    keep = PAIR_METRICS if mode == "model" else ("preference_accuracy",)
    return {name: means[name] for name in keep if name in means}


def reward_scores(reward_model, tokenizer, renderer, prompts, answers, device) -> list[float]:
    """The reward model's reward for each (prompt, answer), read at the answer's end-of-turn token."""
    rewards = []
    for prompt, answer in zip(prompts, answers, strict=True):
        reply = [{"role": "assistant", "content": answer}]
        row = {"prompt": prompt, "chosen": reply, "rejected": reply, "plain": False}
        prompt_ids, completions = renderer.untruncated(row)  # as training renders a pair: prompt, answer, EOS
        ids = prompt_ids + completions["chosen_ids"]
        input_ids = torch.tensor([ids], device=device)
        with torch.no_grad():
            out = reward_model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        rewards.append(float(out.logits[0, 0]))
    return rewards


def win_rate(base: list[float], aligned: list[float]) -> dict[str, float]:
    """Aligned over base: wins / (wins + losses + ties), with ties (equal rewards) counted apart."""
    wins = sum(a > b for a, b in zip(aligned, base, strict=True))
    losses = sum(a < b for a, b in zip(aligned, base, strict=True))
    ties = len(base) - wins - losses
    n = max(len(base), 1)
    return {
        "mean_reward_base": sum(base) / n,
        "mean_reward_aligned": sum(aligned) / n,
        "win_rate": wins / n,
        "loss_rate": losses / n,
        "tie_rate": ties / n,
        "wins": wins,
        "losses": losses,
        "ties": ties,
    }


def load_reward_model_from(path: str, device) -> tuple[torch.nn.Module, Any]:
    """A prefalign reward model (run directory: merged/ or base + adapter/; or a model path) and its tokenizer.
    Anything that is not a sequence classifier with one output is a clear error."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from prefalign.model.load import resolve_path, use_reward_pad_token

    run = Path(path)
    adapter = None
    if run.is_dir() and is_run_dir(run):
        run_config = load_config(yaml.safe_load((run / "config.yaml").read_text()))
        if run_config.method.kind != "reward":
            raise ConfigError(f"--reward-model: {run} is a policy run (method.kind: policy), not a reward model")
        if (run / "merged").is_dir():
            model_path = str(run / "merged")
        elif (run / "adapter").is_dir():
            model_path, adapter = resolve_path(run_config.model.path), str(run / "adapter")
        else:
            raise ConfigError(f"--reward-model: {run} saved no merged/ or adapter/ model")
    else:
        model_path = resolve_path(path)
    config = AutoConfig.from_pretrained(model_path)
    architectures = config.architectures or []
    if adapter is None and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ConfigError(
            f"--reward-model: {path} is not a sequence classifier ({', '.join(architectures) or 'no architecture'}); "
            "pass a reward model trained with method.kind: reward"
        )
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    if model.config.num_labels != 1:
        raise ConfigError(f"--reward-model: {path} has {model.config.num_labels} outputs; a reward model has one")
    tokenizer = AutoTokenizer.from_pretrained(adapter or model_path)
    # The reward is read at the last token that is not padding: the pad token must be the one training chose
    # (never the EOS that ends the answer). A base model's config + adapter still has the base's pad token.
    model.config.get_text_config().pad_token_id = use_reward_pad_token(tokenizer)
    return model.to(device).eval(), tokenizer


def evaluate(
    model_or_run: str,
    data: Path,
    *,
    reference: str | None = None,
    reward_model: str | None = None,
    prompts: Path | None = None,
    n: int = 50,
    max_new_tokens: int = 96,
    out: Path | None = None,
) -> EvalResult:
    """Everything `prefalign eval` does; writes eval.json, eval.jsonl and eval.html to the output directory."""
    import datasets
    import transformers

    from prefalign.data import prepare_data
    from prefalign.data.render import Renderer, RenderSettings
    from prefalign.eval.evaluate import generate
    from prefalign.model.load import load_tokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    if not Path(data).is_file():
        raise ConfigError(f"--data: {data}: no such file")
    target = resolve_target(model_or_run, Path(data), reference)
    config = target.config
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer_config = config.model.model_copy(update={"path": target.adapter or target.policy})
    tokenizer = load_tokenizer(tokenizer_config)
    prepared = prepare_data(config.data, tokenizer, config.train.seed, method=config.method)
    policy = _load_causal(target.policy, target.adapter, config, device)
    reference_model = _load_causal(target.reference, None, config, device) if target.reference else None
    result = EvalResult()
    result.pairs = pair_metrics(target, policy, reference_model, tokenizer, prepared, device)

    d = config.data
    renderer = Renderer(tokenizer, RenderSettings(d.template, d.max_length, d.max_prompt_length, None))
    if prompts is not None:
        messages = read_prompts(prompts)
    else:  # the prompts of --data, each once
        seen: dict[str, list] = {}
        for row in prepared.eval_prompts or []:
            seen.setdefault(json.dumps(row["prompt"]), row["prompt"])
        messages = list(seen.values())
    messages = messages[:n]
    prompt_ids = [renderer.prompt_ids(m, False) for m in messages]
    aligned = generate(policy, tokenizer, prompt_ids, max_new_tokens)
    base = generate(reference_model, tokenizer, prompt_ids, max_new_tokens) if reference_model is not None else []
    result.answers = [
        {"prompt": m[-1]["content"], "base": b, "aligned": a}
        for m, b, a in zip(messages, base or [""] * len(messages), aligned, strict=True)
    ]
    if reward_model is not None and base:
        judge, judge_tokenizer = load_reward_model_from(reward_model, device)
        judge_renderer = Renderer(judge_tokenizer, RenderSettings(d.template, d.max_length, d.max_prompt_length, None))
        base_rewards = reward_scores(judge, judge_tokenizer, judge_renderer, messages, base, device)
        aligned_rewards = reward_scores(judge, judge_tokenizer, judge_renderer, messages, aligned, device)
        for answer, rb, ra in zip(result.answers, base_rewards, aligned_rewards, strict=True):
            answer.update(reward_base=rb, reward_aligned=ra)
        result.rewards = win_rate(base_rewards, aligned_rewards)
    elif reward_model is not None:
        raise ConfigError("--reward-model compares the base model's answers with the aligned ones: give --reference")

    default_out = (target.run_dir / "eval") if target.run_dir else Path("eval")
    result.out_dir = out_dir = Path(out or default_out)
    summary = {"model": model_or_run, "data": str(data), "reference": target.reference,
               "reward_model": reward_model, "prompts": len(messages), "pairs": result.pairs,
               "rewards": result.rewards}  # fmt: skip
    write_json_atomically(out_dir / "eval.json", summary)
    lines = "".join(json.dumps(answer, ensure_ascii=False) + "\n" for answer in result.answers)
    write_text_atomically(out_dir / "eval.jsonl", lines)
    write_text_atomically(out_dir / "eval.html", eval_html(summary, result.answers))
    return result


def eval_html(summary: dict[str, Any], answers: list[dict[str, Any]]) -> str:
    sections = []
    if summary["pairs"]:
        rows = [(name, value) for name, value in summary["pairs"].items()]
        sections.append("<h2>Preference pairs</h2>" + table(("metric", "value"), rows))
    if summary["rewards"]:
        r = summary["rewards"]
        rows = [
            ("mean reward, base", r["mean_reward_base"]),
            ("mean reward, aligned", r["mean_reward_aligned"]),
            ("win rate of aligned over base", r["win_rate"]),
            ("loss rate", r["loss_rate"]),
            ("ties (equal rewards)", r["tie_rate"]),
        ]
        sections.append(f"<h2>Reward model: {esc(summary['reward_model'])}</h2>" + table(("", "value"), rows))
    header = ["prompt", "base", "aligned"]
    with_rewards = bool(answers) and "reward_base" in answers[0]
    if with_rewards:
        header += ["reward base", "reward aligned"]
    rows = []
    for a in answers:
        row = [Raw(pre(a["prompt"])), Raw(pre(a["base"])), Raw(pre(a["aligned"]))]
        if with_rewards:
            row += [a["reward_base"], a["reward_aligned"]]
        rows.append(row)
    if rows:
        sections.append("<h2>Answers, base and aligned</h2>" + table(header, rows, numeric_from=3, cls="wide"))
    else:
        sections.append('<div class="empty">No prompts to answer.</div>')
    subtitle = f"{summary['model']} on {summary['data']}" + (
        f", against {summary['reference']}" if summary["reference"] else ""
    )
    return document("prefalign eval", subtitle, sections)
