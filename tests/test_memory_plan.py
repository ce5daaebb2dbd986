"""The memory plan: sizes, the estimate's arithmetic, the model's shape from its config, the heaviest micro-batch,
train.memory auto's choice, `prefalign plan`, and the estimate against the measured peak of real runs."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefalign.config import ConfigError, load_config
from prefalign.memory.auto import fit_to_budget
from prefalign.memory.estimate import RUNTIME_BYTES, Settings, Workload, estimate_memory
from prefalign.memory.plan import heaviest_workload
from prefalign.memory.shape import ModelShape, shape_from_config, shape_of
from prefalign.sizes import parse_size
from tests.conftest import REPO, make_tiny_model, tiny_config, write_jsonl

MiB = 2**20


# --- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16GB", 16 * 10**9), ("16 GiB", 16 * 2**30), ("16000MiB", 16000 * 2**20), ("16G", 16 * 2**30),
     ("1.5 gib", int(1.5 * 2**30)), (4096, 4096)],
)  # fmt: skip
def test_budget_sizes_parse(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "16 GiBs", "-1GB", "0", "GB"])
def test_a_budget_that_is_not_a_size_is_a_config_error_naming_the_key(bad):
    with pytest.raises(ConfigError, match=r"train\.memory_budget: .*not a size|train\.memory_budget: .*more than 0"):
        load_config({"data": {"train": "x.jsonl"}, "train": {"memory_budget": bad}})


def test_memory_is_auto_by_default():
    config = load_config({"data": {"train": "x.jsonl"}})
    assert config.train.memory == "auto" and config.train.memory_budget is None


# --- the estimate's arithmetic -------------------------------------------------------------------

SHAPE = ModelShape(
    layers=2, hidden=8, intermediate=16, heads=2, kv_heads=1, head_dim=4, vocab=100, tied_head=True,
    parameters=2000, linear_parameters=1200, head_parameters=0, embedding_parameters=800, largest_tensor=800,
    lora_parameters_per_rank=300,
)  # fmt: skip


def test_lora_float32_estimate_by_hand():
    work = Workload(rows=1, width=10, scored=6, layout="prefix_shared_packed")
    plan = estimate_memory(SHAPE, work, Settings(lora_rank=2))
    lora = 2 * 300
    # Per layer and position, float32: norms' inputs 2h, q/k/v and gate/up inputs 2h, q + output 2h, k + v 2·kv,
    # the log-sum-exp (one float per head), o_proj's input h, the MLP's four intermediates 4i, LoRA's middles 7r.
    per_layer = 2 * 8 * 4 + 2 * 8 * 4 + (2 * 8 + 2 * 4) * 4 + 2 * 4 + 8 * 4 + 4 * 16 * 4 + 7 * 2 * 4
    assert per_layer == 576
    # Outside the layers: the final norm's input, RoPE's cos and sin (2 × head_dim), each scored position's
    # input gradient of the frozen LM head.
    outside = 8 * 4 * 10 + 2 * 4 * 4 * 10 + 6 * 8 * 4
    activations = 2 * per_layer * 10 + outside
    assert plan.component("activations") == activations
    head_chunk = 2 * 6 * 100 * 4  # 6 scored positions' logits and a temporary as large, float32
    assert plan.component("LM-head chunk") == head_chunk
    workspace = 3 * 16 * 4 * 10
    assert plan.component("weights") == 2000 * 4 + lora * 4
    assert plan.component("gradients") == lora * 4
    assert plan.component("optimizer state") == lora * 8
    assert plan.moment == "start of backward"
    assert plan.peak == RUNTIME_BYTES["cpu"] + 2000 * 4 + lora * 4 + lora * 8 + activations + head_chunk + workspace


def test_fused_mlp_keeps_three_of_the_four_intermediates_where_the_model_has_fusable_mlps():
    work = Workload(rows=1, width=10, scored=6, layout="prefix_shared_packed")
    fusable = dataclasses.replace(SHAPE, fusable_mlp=True)
    plain = estimate_memory(fusable, work, Settings(lora_rank=2))
    fused = estimate_memory(fusable, work, Settings(lora_rank=2, fused_mlp=True))
    # SiLU(gate) is recomputed in backward: one intermediate-wide float32 tensor per layer and position less.
    assert plain.component("activations") - fused.component("activations") == 2 * 16 * 4 * 10
    # A model without fusable MLPs (SHAPE says none) keeps all four whatever the setting.
    assert estimate_memory(SHAPE, work, Settings(lora_rank=2, fused_mlp=True)).peak == plain.peak


def test_full_fine_tuning_with_a_reference_copy_counts_gradients_state_and_the_copy():
    work = Workload(rows=1, width=10, scored=6, layout="prefix_shared_packed")
    plan = estimate_memory(SHAPE, work, Settings(lora_rank=None, reference="model"))
    assert plan.component("gradients") == 2000 * 4
    assert plan.component("optimizer state") == 2000 * 8
    assert plan.component("reference") == 2000 * 4
    # The trained (tied) head's gradient joins the LM-head chunk at the start of backward.
    assert plan.component("LM-head chunk") == 2 * 6 * 100 * 4 + 800 * 4
    lora = estimate_memory(SHAPE, work, Settings(lora_rank=2))
    assert plan.peak > lora.peak


def test_sharded_processes_each_hold_their_share_and_gather_what_runs():
    """The plan of each of several processes: FSDP / ZeRO-3 split weights, the reference copy, gradients and
    optimizer state (rounded up: shards are padded to equal sizes), ZeRO-2 gradients and optimizer state."""
    from prefalign.memory.display import plan_scope

    work = Workload(rows=1, width=10, scored=6, layout="prefix_shared_packed")
    one = estimate_memory(SHAPE, work, Settings(lora_rank=None, reference="model"))
    fsdp = estimate_memory(SHAPE, work, Settings(lora_rank=None, reference="model", processes=2, sharding="parameters"))
    assert fsdp.component("weights") == fsdp.component("reference") == 2000 * 4 // 2
    assert fsdp.component("gradients") == 2000 * 4 // 2 and fsdp.component("optimizer state") == 2000 * 8 // 2
    # While they run, the weights outside the decoder layers (the 800 embedding parameters: FSDP's root unit) and
    # one layer's (1200 linear parameters / 2 layers) are whole, in buffers of their own.
    gathered = (800 + 1200 // 2) * 4
    assert fsdp.component("gathered weights") == gathered and one.component("gathered weights") == 0
    # Each process runs its own micro-batch: activations, the LM-head chunk (with the trained tied head's whole
    # gradient, before it is reduce-scattered) and the workspace are one process's, so the peak moves by the shards.
    for name in ("activations", "LM-head chunk", "backward workspace"):
        assert fsdp.component(name) == one.component(name)
    assert one.moment == fsdp.moment == "start of backward"
    assert one.peak - fsdp.peak == (8000 + 8000 + 16000) // 2 - gathered
    assert "1/2 on each process" in next(c.note for c in fsdp.components if c.name == "weights")

    zero2 = estimate_memory(SHAPE, work, Settings(lora_rank=None, reference="model", processes=3, sharding="gradients"))
    assert zero2.component("weights") == zero2.component("reference") == 2000 * 4  # every process holds the model
    assert zero2.component("gradients") == 2667 and zero2.component("optimizer state") == 5334  # ⌈8000/3⌉, ⌈16000/3⌉
    assert zero2.component("gathered weights") == 0
    assert one.peak - zero2.peak == 16000 - 5334  # at the start of backward the gradients are not yet counted

    assert plan_scope(one.settings) == "one process"
    assert plan_scope(fsdp.settings) == "per process, 2 processes, weights, gradients and optimizer state sharded"
    ddp = Settings(processes=2)
    assert plan_scope(ddp) == "per process, 2 processes, nothing sharded"
    # data parallel: every process holds everything, and DDP a second copy of the gradients (LoRA r16's here)
    assert estimate_memory(SHAPE, work, ddp).component("gradient buckets") == 16 * 300 * 4
    assert estimate_memory(SHAPE, work, ddp).peak == estimate_memory(SHAPE, work, Settings()).peak + 16 * 300 * 4
    assert fsdp.component("gradient buckets") == zero2.component("gradient buckets") == 0
    with pytest.raises(ValueError, match="sharding: unknown 'zero9'"):
        estimate_memory(SHAPE, work, Settings(processes=2, sharding="zero9"))


def test_checkpointing_keeps_one_layer_input_per_layer_and_one_layer_whole():
    work = Workload(rows=2, width=500, scored=100, layout="prefix_shared_packed")
    plain = estimate_memory(SHAPE, work, Settings(lora_rank=2))
    checkpointed = estimate_memory(SHAPE, work, Settings(lora_rank=2, gradient_checkpointing=True))
    # 2 layers × 576 B per position become 2 layers × h × 4 B (their inputs) + one layer recomputed.
    saved = (2 * 576 - (2 * 8 * 4 + 576)) * work.tokens
    assert plain.component("activations") - checkpointed.component("activations") == saved


def test_quantised_base_and_8_bit_optimizer_shrink_what_they_should():
    work = Workload(rows=1, width=10, scored=6)
    plain = estimate_memory(SHAPE, work, Settings(lora_rank=None))
    nf4 = estimate_memory(SHAPE, work, Settings(quantization="nf4"))
    assert nf4.component("weights") == int(2000 * 4 - 1200 * (4 - (0.5 + 4 / 64))) + 300 * 16 * 4
    # A 16-bit base: without autocast QLoRA's preparation upcasts the 800 unquantised weights to float32; under
    # autocast the embeddings stay 16-bit (model/load.py prepare_quantized).
    upcast = estimate_memory(SHAPE, work, Settings(quantization="nf4", weight_dtype="bfloat16"))
    kept = estimate_memory(SHAPE, work, Settings(quantization="nf4", weight_dtype="bfloat16", precision="bf16"))
    lora = 300 * 16 * 4
    assert kept.component("weights") == int(2000 * 2 - 1200 * (2 - (0.5 + 4 / 64))) + lora
    assert upcast.component("weights") == kept.component("weights") + 800 * 2
    eight_bit = estimate_memory(SHAPE, work, Settings(lora_rank=None, optimizer="adamw_8bit"))
    assert eight_bit.component("optimizer state") == int(2000 * 2.04) < plain.component("optimizer state")
    unknown = estimate_memory(SHAPE, work, Settings(optimizer="shampoo"))
    assert unknown.notes and "counted as AdamW" in unknown.notes[0]


# --- the model's shape, from its config ---------------------------------------------------------


def test_shape_from_the_config_matches_the_loaded_model_and_peft(tokenizer):
    from peft import LoraConfig, get_peft_model

    model = make_tiny_model(tokenizer)
    shape = shape_from_config(model.config)
    assert shape == shape_of(model)
    assert shape.parameters == sum(p.numel() for p in model.parameters())  # tied weights once
    assert (shape.layers, shape.hidden, shape.kv_heads, shape.head_dim, shape.tied_head) == (2, 64, 2, 16, True)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    assert shape.lora_parameters(4) == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


def test_the_heaviest_micro_batch_in_each_layout(tokenizer, toy_data):
    from prefalign.config import DataConfig
    from prefalign.data import prepare_data
    from prefalign.data.layout import ONE_ROW

    train = prepare_data(DataConfig(train=str(toy_data)), tokenizer, 0).train
    lengths = [(len(p), len(c), len(r)) for p, c, r in zip(train["prompt_ids"], train["chosen_ids"],
                                                           train["rejected_ids"], strict=True)]  # fmt: skip
    n, pad = len(lengths), tokenizer.pad_token_id
    padded = heaviest_workload(train, pad, n, "padded", None, kl=False)
    assert (padded.rows, padded.width) == (2 * n, max(p + max(c, r) for p, c, r in lengths))
    assert padded.scored == sum(c + r for _, c, r in lengths)
    shared = heaviest_workload(train, pad, n, "prefix_shared_packed", ONE_ROW, kl=False)
    assert (shared.rows, shared.width) == (1, sum(p + c + r for p, c, r in lengths))
    assert shared.reread_prompt == sum(p for p, _, _ in lengths)  # each rejected answer re-reads its prompt
    one = heaviest_workload(train, pad, 1, "prefix_shared_packed", ONE_ROW, kl=False)
    assert one.width == max(p + c + r for p, c, r in lengths)


# --- train.memory: auto --------------------------------------------------------------------------


def _plan_of(micro_batch: int, checkpointing: bool):
    """Plans of a batch whose every example is a 400-position row, on the hand-made shape."""
    work = Workload(rows=1, width=400 * micro_batch, scored=100 * micro_batch, layout="prefix_shared_packed")
    return estimate_memory(SHAPE, work, Settings(lora_rank=2, gradient_checkpointing=checkpointing))


def test_a_run_that_fits_runs_as_configured():
    budget = _plan_of(8, False).peak
    choice = fit_to_budget(_plan_of, budget, batch_size=8, grad_accum=1, gradient_checkpointing=False)
    assert (choice.batch_size, choice.grad_accum, choice.gradient_checkpointing, choice.changed) == (8, 1, False, False)
    assert choice.reason.startswith("fits as configured")


def test_auto_splits_micro_batches_before_checkpointing():
    budget = _plan_of(2, False).peak  # 4 pairs per micro-batch do not fit, 2 do
    choice = fit_to_budget(_plan_of, budget, batch_size=8, grad_accum=3, gradient_checkpointing=False)
    assert (choice.batch_size, choice.grad_accum, choice.gradient_checkpointing) == (2, 12, False)  # 24 per step
    assert "micro-batches of 2 × 12 per step instead of 8 × 3" in choice.reason


def test_auto_checkpoints_when_splitting_is_not_enough_or_not_allowed():
    budget = _plan_of(1, True).peak
    assert budget < _plan_of(1, False).peak
    choice = fit_to_budget(_plan_of, budget, batch_size=8, grad_accum=1, gradient_checkpointing=False)
    assert (choice.batch_size, choice.grad_accum, choice.gradient_checkpointing) == (1, 8, True)
    # A loss that looks across its micro-batch (kto's KL estimate) keeps its batch: checkpointing alone.
    budget = _plan_of(8, True).peak
    choice = fit_to_budget(_plan_of, budget, batch_size=8, grad_accum=1, gradient_checkpointing=False,
                           can_split=False)  # fmt: skip
    assert (choice.batch_size, choice.gradient_checkpointing) == (8, True)
    assert "gradient checkpointing on" in choice.reason


def test_on_a_cpu_a_run_that_fits_is_split_when_activations_dominate_keeping_enough_positions():
    budget = 10 * _plan_of(8, False).peak  # fits many times over
    configured = _plan_of(8, False)
    sized = [c for c in configured.components if c.name != "runtime"]
    assert max(sized, key=lambda c: c.bytes).name == "activations"
    # 400 positions per example: micro-batches of 2 (800) fall under 1000 positions, so 4 (1600) is the split.
    choice = fit_to_budget(_plan_of, budget, batch_size=8, grad_accum=2, gradient_checkpointing=False,
                           lean_positions=1000)  # fmt: skip
    assert (choice.batch_size, choice.grad_accum, choice.gradient_checkpointing, choice.changed) == (4, 4, False, True)
    assert choice.plan.peak < configured.peak
    assert "activations are its largest part" in choice.reason and "micro-batches of 4 × 4" in choice.reason
    # Without a floor (a GPU), or for a loss that looks across its micro-batch, it runs as configured.
    for options in ({}, {"lean_positions": 1000, "can_split": False}):
        choice = fit_to_budget(_plan_of, budget, batch_size=8, grad_accum=2, gradient_checkpointing=False, **options)
        assert (choice.batch_size, choice.changed) == (8, False)
    # A floor no split can keep leaves it as configured too.
    choice = fit_to_budget(_plan_of, budget, batch_size=8, grad_accum=2, gradient_checkpointing=False,
                           lean_positions=4000)  # fmt: skip
    assert not choice.changed


def test_a_run_whose_weights_dominate_is_not_split_on_a_cpu():
    def weights_heavy(micro_batch: int, checkpointing: bool):
        work = Workload(rows=1, width=micro_batch, scored=micro_batch, layout="prefix_shared_packed")
        return estimate_memory(SHAPE, work, Settings(lora_rank=2, gradient_checkpointing=checkpointing))

    budget = 10 * weights_heavy(8, False).peak
    choice = fit_to_budget(weights_heavy, budget, batch_size=8, grad_accum=1, gradient_checkpointing=False,
                           lean_positions=1)  # fmt: skip
    assert not choice.changed


def test_nothing_fits_refuses_with_the_fixes_and_weights_alone_are_named():
    smallest = _plan_of(1, True).peak
    expected = r"does not fit.*at least.*micro-batch 1, gradient checkpointing on.*to fit, a shorter data\.max_length"
    with pytest.raises(ConfigError, match=expected):
        fit_to_budget(_plan_of, smallest - 1, batch_size=8, grad_accum=1, gradient_checkpointing=False,
                      fixes=["a shorter data.max_length"])  # fmt: skip
    with pytest.raises(ConfigError, match="less than the model's weights alone"):
        fit_to_budget(_plan_of, 1000, batch_size=8, grad_accum=1, gradient_checkpointing=False)


# --- prefalign plan ------------------------------------------------------------------------------


def _plan_cli(*args):
    from prefalign.cli import app

    return CliRunner().invoke(app, ["plan", *[str(arg) for arg in args]])


def test_plan_command_prints_the_table_and_what_auto_chooses(tmp_path, tiny_model_dir, toy_data):
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps(tiny_config(tiny_model_dir, toy_data, tmp_path / "run")))
    result = _plan_cli(config, "train.memory_budget=64GiB")
    assert result.exit_code == 0, result.output
    for word in ("weights", "activations", "LM-head chunk", "peak", "64.00 GiB", "train.memory_budget",
                 "fits as configured"):  # fmt: skip
        assert word in result.output
    assert not (tmp_path / "run").exists()  # nothing written, no weights loaded
    tight = _plan_cli(config, "train.memory_budget=1MiB")
    assert tight.exit_code == 1 and "weights alone" in tight.output
    bad = _plan_cli(config, "train.memory_budget=lots")
    assert bad.exit_code == 2 and "train.memory_budget" in bad.output
    offload = _plan_cli(config, "train.memory_budget=64GiB", "train.activation_offload=true")
    assert offload.exit_code == 0 and "train.activation_offload has no effect on a CPU" in offload.output
    offload_off = _plan_cli(config, "train.memory=off", "train.activation_offload=true")
    assert offload_off.exit_code == 0 and "train.activation_offload has no effect on a CPU" in offload_off.output


# --- the estimate against the measured peak --------------------------------------------------------

SENTENCE = "the model answers a question about data and time with care while people read what it writes"


def _text(rng: random.Random, words: int) -> str:
    vocabulary = SENTENCE.split()
    return " ".join(rng.choice(vocabulary) for _ in range(words))


def _measure(tmp_path: Path, model: str, case: str, layout: str, batch_size: int = 2, words: int = 100):
    """(measured peak MiB, estimated peak MiB) of a 2-step float32 run with 100-word prompts and answers."""
    from prefalign.data import prepare_data
    from prefalign.memory.run import plan_for_config
    from prefalign.model.load import load_tokenizer

    rng = random.Random(0)
    rows = [
        {"prompt": [{"role": "user", "content": _text(rng, words)}],
         "chosen": [{"role": "assistant", "content": _text(rng, words)}],
         "rejected": [{"role": "assistant", "content": _text(rng, words)}]}
        for _ in range(2 * batch_size)
    ]  # fmt: skip
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    lora = case == "lora"
    raw = {
        "model": {"path": model, "lora": {"r": 16} if lora else None},
        "reference": {"mode": "adapter" if lora else "model"},
        "data": {"train": str(data), "layout": layout, "max_length": 4096, "max_prompt_length": None},
        "method": {"loss": "sigmoid", "rpo_alpha": None},
        "train": {"max_steps": 2, "batch_size": batch_size, "mixed_precision": "no", "memory": "off"},
        "eval": {"generations": 0, "before": False},
        "output": {"dir": str(tmp_path / "run"), "save": []},
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(raw))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(REPO / "tests" / "memory_probe.py"), tmp_path / "config.json",
                    tmp_path / "measured.json"], check=True, env=env, capture_output=True)  # fmt: skip
    measured = json.loads((tmp_path / "measured.json").read_text())["delta_mib"]
    config = load_config({**raw, "train": {**raw["train"], "memory_budget": "1TiB"}})
    tokenizer = load_tokenizer(config.model)
    train = prepare_data(config.data, tokenizer, 0, method=config.method).train
    plan = plan_for_config(config, train, tokenizer.pad_token_id, device="cpu").plan
    return measured, plan.peak / MiB


CASES = [("lora", "padded"), ("lora", "prefix_shared_packed"), ("full", "padded"), ("full", "prefix_shared_packed")]


@pytest.mark.parametrize(("case", "layout"), CASES)
def test_estimate_within_20_percent_of_the_measured_peak_tiny_model(tmp_path, tiny_model_dir, case, layout):
    measured, estimated = _measure(tmp_path, str(tiny_model_dir), case, layout)
    assert abs(estimated - measured) <= 0.2 * measured, (measured, estimated)


@pytest.mark.slow
@pytest.mark.parametrize(("case", "layout"), CASES)
def test_estimate_within_20_percent_of_the_measured_peak_smollm2(tmp_path, case, layout):
    measured, estimated = _measure(tmp_path, "builtin:smollm2-135m-instruct", case, layout)
    assert abs(estimated - measured) <= 0.2 * measured, (measured, estimated)


def test_a_run_records_its_plan_and_refuses_what_cannot_fit(tiny_model_dir, toy_data, tmp_path):
    import prefalign

    config = tiny_config(tiny_model_dir, toy_data, tmp_path / "run", train={"memory_budget": "64GiB"})
    result = prefalign.train(config, quiet=True)
    saved = json.loads((result.run_dir / "result.json").read_text())["memory"]
    assert saved["fits"] and saved["budget_bytes"] == 64 * 2**30 and saved["choice"]["changed"] is False
    assert saved["plan"]["peak_bytes"] == result.memory["plan"]["peak_bytes"] > 0
    tight = tiny_config(tiny_model_dir, toy_data, tmp_path / "tight", train={"memory_budget": "1MiB"})
    with pytest.raises(ConfigError, match="weights alone"):
        prefalign.train(tight, quiet=True)
    assert not (tmp_path / "tight" / "adapter").exists()
