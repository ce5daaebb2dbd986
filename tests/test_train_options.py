"""train.gradient_checkpointing and train.compile change how a step runs, never what it computes."""

from __future__ import annotations

import shutil

import pytest
import torch

import prefalign
from prefalign.config import ConfigError, MethodConfig, ModelConfig
from prefalign.data.layout import padded
from prefalign.model.load import apply_train_options, attach_lora
from prefalign.model.reference import build_reference
from prefalign.objective import make_objective
from prefalign.scoring.logps import SequenceScorer
from prefalign.training.metrics import read_metrics
from tests.conftest import make_tiny_model, tiny_config
from tests.test_logps import assert_same_gradient, random_examples


def one_step(tokenizer, *, lora: bool, gradient_checkpointing: bool) -> tuple[torch.Tensor, dict, int]:
    """(per-pair losses, gradients by name, calls of the first layer's MLP activation in the policy's forward and
    backward) for one float32 micro-batch of the default objective (DPO + NLL on chosen) on the tiny model."""
    model = make_tiny_model(tokenizer)
    if lora:
        model = attach_lora(model, ModelConfig(path="tiny", lora={"r": 4, "alpha": 8}))
        # PEFT starts B at zero, so A would get no gradient: give the adapter a non-trivial start.
        torch.manual_seed(1)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data.normal_(std=0.02)
    apply_train_options(model, gradient_checkpointing=gradient_checkpointing)
    model.train()
    scorer = SequenceScorer(model)
    reference_model = None if lora else make_tiny_model(tokenizer)
    reference = build_reference("adapter" if lora else "model", scorer, reference_model)
    objective = make_objective(MethodConfig())
    batch = padded(random_examples(len(tokenizer), 4, seed=3), tokenizer.pad_token_id)

    ref_logps = reference.logps(batch)  # under no_grad: checkpointing stays out of the way
    # Count calls of a function inside the checkpointed layer forward (module hooks do not run in the recompute).
    calls = []
    act_fn = scorer.backbone.layers[0].mlp.act_fn
    act_fn.forward = lambda x, forward=act_fn.forward: calls.append(1) or forward(x)
    losses, _ = objective(objective.model_outputs(scorer, batch), ref_logps, batch)
    losses.sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return losses.detach(), grads, len(calls)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_gradient_checkpointing_gives_the_same_losses_and_gradients(tokenizer, lora):
    plain_losses, plain_grads, plain_calls = one_step(tokenizer, lora=lora, gradient_checkpointing=False)
    losses, grads, calls = one_step(tokenizer, lora=lora, gradient_checkpointing=True)

    # Checkpointing really ran: backward ran each layer's forward again instead of reading stored activations.
    assert (plain_calls, calls) == (1, 2)
    torch.testing.assert_close(losses, plain_losses, rtol=1e-6, atol=1e-6)
    assert grads.keys() == plain_grads.keys()
    for name, grad in grads.items():
        assert grad.abs().max() > 0, f"{name}: no gradient"  # LoRA weights too: their input needs no grad
        assert_same_gradient(grad, plain_grads[name], name)


def train_records(run_dir) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]


def test_run_with_gradient_checkpointing_logs_the_same_losses(tiny_model_dir, toy_data, tmp_path):
    runs = []
    for checkpointing in (False, True):
        run_dir = tmp_path / f"gc-{checkpointing}"
        config = tiny_config(
            tiny_model_dir, toy_data, run_dir, train={"max_steps": 3, "gradient_checkpointing": checkpointing}
        )
        prefalign.train(config, quiet=True)
        runs.append(train_records(run_dir))
    plain, checkpointed = runs
    assert len(plain) == len(checkpointed) == 3
    for a, b in zip(plain, checkpointed, strict=True):
        for key in ("loss", "rewards/margins", "logps/chosen", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("clang++") is None, reason="no C++ compiler")
def test_compiled_backbone_trains_a_step(tiny_model_dir, toy_data, tmp_path):
    """Full fine-tuning (the frozen reference copy stays eager): ~20-40 s on 2 CPU cores, mostly compiling."""
    runs = []
    for compile_backbone in (False, True):
        run_dir = tmp_path / f"compile-{compile_backbone}"
        config = tiny_config(
            tiny_model_dir,
            toy_data,
            run_dir,
            model={"lora": None},
            train={"max_steps": 1, "compile": compile_backbone, "lr": 1e-4},
            output={"save": ["merged"]},
        )
        prefalign.train(config, quiet=True)
        runs.append(train_records(run_dir))
    (eager,), (compiled,) = runs
    # Inductor fuses and reorders float32 arithmetic: the same numbers up to rounding.
    for key in ("loss", "logps/chosen", "grad_norm"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-4), key


def test_compile_without_a_compiler_is_a_clear_error(tokenizer, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match=r"train\.compile: torch\.compile needs a C\+\+ compiler"):
        apply_train_options(make_tiny_model(tokenizer), compile=True)


@pytest.mark.parametrize(
    ("attention", "layout"),
    [(None, "prefix_shared_packed"), ("eager", "prefix_shared_packed"), ("flex_attention", "prefix_shared_packed")],
)
def test_model_attention_reaches_the_model_and_the_layout(tiny_model_dir, attention, layout):
    """model.attention is transformers' attn_implementation for the policy (and a reference loaded from disk);
    data.layout auto gives a 4-D layout only to the attentions that apply a 4-D mask."""
    from prefalign.model.attention import attention_implementation, resolve_layout
    from prefalign.model.load import load_base, load_policy

    config = ModelConfig(path=str(tiny_model_dir), attention=attention, lora={"r": 4, "alpha": 8})
    policy, reference = load_policy(config), load_base(config, str(tiny_model_dir))
    expected = attention or "sdpa"  # transformers' default for Llama
    assert attention_implementation(policy) == attention_implementation(reference) == expected
    assert resolve_layout("auto", policy) == layout


def test_flex_attention_cannot_train_on_cpu(tiny_model_dir, toy_data, tmp_path):
    config = tiny_config(tiny_model_dir, toy_data, tmp_path / "run", model={"attention": "flex_attention"})
    with pytest.raises(ConfigError, match="flex_attention cannot train on CPU"):
        prefalign.train(config, quiet=True)


@pytest.mark.parametrize(
    ("requested", "slowdown", "expected", "note"),
    [
        ("auto", 300.0, "no", "auto: float32, because this CPU multiplies bf16 matrices 300× slower"),
        ("auto", 0.4, "bf16", None),
        ("bf16", 300.0, "bf16", "much slower than with auto or no"),
        ("no", 300.0, "no", None),
        ("fp16", 0.4, "fp16", None),
    ],
)
def test_mixed_precision_auto_on_cpu(monkeypatch, requested, slowdown, expected, note):
    """auto takes bf16 only where the CPU multiplies it fast; an explicit bf16 on a slow one is kept, with a warning."""
    from prefalign.training import precision

    monkeypatch.setattr(precision, "cpu_bf16_slowdown", lambda: slowdown)
    got, message = precision.resolve_precision(requested, torch.device("cpu"))
    assert got == expected
    assert (message is None) if note is None else (note in message)


def test_bf16_slowdown_is_measured_on_this_cpu():
    """The timing agrees with what the CPU says it has: native bf16 (AVX-512 bf16, AMX) is fast, AVX2 alone slow."""
    from pathlib import Path

    from prefalign.training.precision import _SLOWDOWN_LIMIT, cpu_bf16_slowdown

    slowdown = cpu_bf16_slowdown()
    assert slowdown > 0
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert slowdown <= _SLOWDOWN_LIMIT
    elif "avx2" in flags and "avx512f" not in flags:
        assert slowdown > _SLOWDOWN_LIMIT
    else:
        pytest.skip("no /proc/cpuinfo flags that say whether bf16 is native here")


def test_a_run_records_what_auto_chose(tiny_model_dir, toy_data, tmp_path):
    import yaml

    from prefalign.training.precision import _SLOWDOWN_LIMIT, cpu_bf16_slowdown

    run_dir = tmp_path / "run"
    prefalign.train(tiny_config(tiny_model_dir, toy_data, run_dir, train={"max_steps": 1, "mixed_precision": "auto"}),
                    quiet=True)  # fmt: skip
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["mixed_precision"]
    # What auto must pick on this CPU, from the measurement itself (cached per process, so the run saw the same).
    assert recorded == ("bf16" if cpu_bf16_slowdown() <= _SLOWDOWN_LIMIT else "no")


@pytest.mark.parametrize(("env", "expected"), [(None, False), ("0", False), ("1", True)])
def test_hub_kernels_stay_off_unless_asked(tiny_model_dir, monkeypatch, env, expected):
    """transformers loads with its Hub kernels on by default, which fails offline on a GPU (see hub_kernels):
    prefalign's loaders turn them off, and USE_HUB_KERNELS=1 turns them back on."""
    from prefalign.model.load import load_base

    if env is None:
        monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    else:
        monkeypatch.setenv("USE_HUB_KERNELS", env)
    model = load_base(ModelConfig(path=str(tiny_model_dir)))
    assert model.use_kernels is expected
