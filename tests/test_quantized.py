"""Quantised bases (QLoRA): bitsandbytes nf4/fp4/int8 on CPU, LoRA on top, every loss family, resume, layouts, merge.

Each run's first step is checked against log-probs (or rewards) computed here with a plain transformers forward
of the saved adapter on the same quantised base: full logits, log-softmax, a gather. Runs take one step at a
learning rate too small to move a weight (1e-12), so the saved adapter is the one step 1 was computed with.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

import prefalign
from prefalign.config import ConfigError, load_config
from prefalign.model.load import is_quantized, load_policy, load_tokenizer, quantization_config
from prefalign.training.metrics import read_metrics
from tests.conftest import tiny_config

pytest.importorskip("bitsandbytes")

REPO_MODEL = str(Path(__file__).resolve().parent)  # any local directory fingerprints; the tests' own will do
STILL = {"max_steps": 1, "lr": 1e-12, "warmup_ratio": 0.0, "batch_size": 16}  # step 1 over all 16 toy pairs


def first_train_record(run_dir) -> dict:
    return next(r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train")


def quantized_base(model_dir, quantization: str, kind: str = "policy"):
    """The base as prefalign loads it (the run's config section), for the hand computations."""
    config = load_config({"model": {"path": str(model_dir), "quantization": quantization}, "data": {"train": "x"}})
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForCausalLM if kind == "policy" else AutoModelForSequenceClassification
    extra = {"num_labels": 1} if kind == "reward" else {}
    return cls.from_pretrained(
        model_dir,
        dtype=torch.bfloat16,
        quantization_config=quantization_config(config.model, reward=kind == "reward"),
        device_map="cpu",
        **extra,
    )


def prepared(run_dir, model_dir):
    """The run's tokenised training examples, as the run prepared them."""
    from prefalign.data import prepare_data

    config = load_config(run_dir / "config.yaml")
    tokenizer = load_tokenizer(config.model)
    return prepare_data(config.data, tokenizer, config.train.seed, method=config.method).train


@torch.no_grad()
def answer_logps(model, prompt_ids: list[int], answer_ids: list[int]) -> float:
    """log π(answer | prompt) from the model's full logits."""
    ids = torch.tensor([prompt_ids + answer_ids])
    logits = model(input_ids=ids).logits.float()[0, len(prompt_ids) - 1 : -1]
    return logits.log_softmax(-1).gather(-1, torch.tensor(answer_ids)[:, None]).sum().item()


def adapter_policy(model_dir, run_dir, quantization="nf4"):
    from peft import PeftModel

    return PeftModel.from_pretrained(quantized_base(model_dir, quantization), run_dir / "adapter").eval()


# ---------------------------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"model": {"quantization": "nf4", "lora": None}}, "model.lora: a quantised base"),
        ({"model": {"quantization": "int8", "lora": None}}, "model.quantization: null for full fine-tuning"),
        ({"model": {"quantization": "nf4"}, "reference": {"mode": "model"}}, "reference.mode: 'model' would keep"),
        ({"model": {"quantization": "nf4"}, "reference": {"path": "x", "mode": "precomputed"}}, "reference.path:"),
        ({"model": {"quantization_options": {"double_quant": False}}}, "model.quantization_options: set model"),
        ({"model": {"quantization": "nf4", "dtype": "auto"}}, "model.dtype: 'auto' with model.quantization"),
        ({"model": {"quantization": "int4"}}, "model.quantization: Input should be 'nf4', 'fp4' or 'int8'"),
        ({"train": {"optimizer": "adam_8bit"}}, "train.optimizer: unknown optimizer 'adam_8bit'; known: adamw,"),
    ],
)
def test_config_errors_name_the_key(sections, message):
    with pytest.raises(ConfigError) as error:
        load_config({"data": {"train": "x.jsonl"}, **sections})
    assert message in str(error.value), str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a paged optimizer is refused only without CUDA")
@pytest.mark.parametrize(("name", "unpaged"), [("paged_adamw_8bit", "adamw_8bit"), ("paged_adamw_32bit", "adamw")])
def test_paged_optimizer_without_cuda_names_the_unpaged_one(name, unpaged):
    with pytest.raises(ConfigError) as error:
        load_config({"data": {"train": "x.jsonl"}, "train": {"optimizer": name}})
    assert f"train.optimizer: {name} pages optimizer state" in str(error.value)
    assert f"use {unpaged} (the same optimizer without paging)" in str(error.value)
    # A finished run's config is still readable here (prefalign merge reads it)
    finished = load_config({"data": {"train": "x.jsonl"}, "train": {"optimizer": name}}, machine=False)
    assert finished.train.optimizer == name


def test_quantised_defaults_and_round_trip():
    import yaml

    config = load_config({"data": {"train": "x.jsonl"}, "model": {"quantization": "nf4"}})
    assert config.model.dtype == "bfloat16"  # what merged/ is written in, as Unsloth's merged_16bit
    assert load_config(yaml.safe_load(config.to_yaml())) == config
    given = load_config({"data": {"train": "x.jsonl"}, "model": {"quantization": "nf4", "dtype": "float16"}})
    assert given.model.dtype == "float16"
    assert load_config({"data": {"train": "x.jsonl"}}).model.dtype == "float32"  # unquantised: unchanged


# ---------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("quantization", ["nf4", "fp4", "int8"])
def test_quantised_policy_trains_only_the_adapter(tiny_model_dir, quantization):
    import bitsandbytes as bnb

    config = load_config({"model": {"path": str(tiny_model_dir), "quantization": quantization, "lora": {"r": 4}},
                          "data": {"train": "x"}})  # fmt: skip
    policy = load_policy(config.model)
    assert is_quantized(policy)
    layer = bnb.nn.Linear8bitLt if quantization == "int8" else bnb.nn.Linear4bit
    q_proj = policy.get_base_model().model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, layer)
    if quantization != "int8":
        assert q_proj.base_layer.weight.quant_state.quant_type == quantization
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # QLoRA's preparation (without autocast): the unquantised weights (norms, embeddings) in float32
    assert policy.get_base_model().model.norm.weight.dtype == torch.float32
    assert policy.get_base_model().model.embed_tokens.weight.dtype == torch.float32


def test_under_autocast_the_frozen_embeddings_stay_16_bit_with_bit_identical_losses_and_gradients(tiny_model_dir):
    config = load_config({"model": {"path": str(tiny_model_dir), "quantization": "nf4", "lora": {"r": 4}},
                          "data": {"train": "x"}})  # fmt: skip
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    results = {}
    for autocast in (False, True):
        torch.manual_seed(0)  # the same LoRA initialisation
        policy = load_policy(config.model, autocast=autocast)
        for name, param in policy.named_parameters():  # B starts at zero: give the adapter something to say
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.02, generator=torch.Generator().manual_seed(1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = policy(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
        embeddings = policy.get_base_model().model.embed_tokens.weight
        results[autocast] = (loss.detach(), grads, embeddings.dtype)
    (loss, grads, upcast), (kept_loss, kept_grads, kept) = results[False], results[True]
    assert (upcast, kept) == (torch.float32, torch.bfloat16)  # half the embeddings' memory
    assert torch.equal(loss, kept_loss)
    assert grads.keys() == kept_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.equal(grad, kept_grads[name]), name


def test_an_eval_pass_leaves_the_4bit_layers_trainable(tiny_model_dir, tokenizer):
    """bitsandbytes repacks a CPU 4-bit weight for inference after an eval-mode forward without grad (on AVX512-BF16
    CPUs), and its packed op has no backward; prefalign keeps the layers unpacked, so the LoRA gradients after a
    reference or evaluation pass are those of a model that never ran one."""
    from tests.test_layouts import logps_and_grads, random_examples

    config = load_config({"model": {"path": str(tiny_model_dir), "quantization": "nf4", "lora": {"r": 4}},
                          "data": {"train": "x"}})  # fmt: skip
    examples = random_examples(len(tokenizer), 4, "paired", seed=5)
    grads = []
    for warm_up in (False, True):
        torch.manual_seed(0)
        policy = load_policy(config.model)
        with torch.no_grad():
            for name, p in policy.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        if warm_up:  # what the reference pass and evaluation do
            policy.eval()
            with torch.no_grad():
                policy(input_ids=torch.tensor([[1, 2, 3, 4]]))
            policy.train()
        grads.append(logps_and_grads(policy, examples, "padded", False, tokenizer.pad_token_id)[1])
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 2 * 7 * 2  # A and B of 7 linears, 2 layers
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=0, atol=0)


def test_the_reference_cache_tells_a_quantised_base_apart():
    from prefalign.model.reference_cache import reference_fingerprint

    def fingerprint(**model):
        config = load_config({"model": {"path": REPO_MODEL, **model}, "data": {"train": "x"}})
        return reference_fingerprint(config.model, config.reference.path)

    plain, nf4, fp4 = fingerprint(), fingerprint(quantization="nf4"), fingerprint(quantization="fp4")
    assert plain is not None and "quantization" not in plain  # unquantised runs keep the keys they had
    assert len({str(plain), str(nf4), str(fp4)}) == 3
    assert nf4["quantization"]["type"] == "nf4" and nf4["quantization"]["double_quant"] is True


# ---------------------------------------------------------------------------------------------- every family


def test_dpo_quantised_first_step_by_hand(tiny_model_dir, toy_data, tmp_path):
    """Adapter reference on the quantised base: at step 1 policy = reference, so the loss is log 2; the logged
    log-probs are the quantised model's, not the full-precision one's."""
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, model={"quantization": "nf4"}, train=STILL,
                         reference={"mode": "adapter"})  # fmt: skip
    prefalign.train(config, quiet=True)
    record = first_train_record(run_dir)
    assert record["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert record["rewards/margins"] == pytest.approx(0.0, abs=1e-6)

    policy = adapter_policy(tiny_model_dir, run_dir)
    full = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    examples = prepared(run_dir, tiny_model_dir)
    chosen = [answer_logps(policy, e["prompt_ids"], e["chosen_ids"]) for e in examples]
    rejected = [answer_logps(policy, e["prompt_ids"], e["rejected_ids"]) for e in examples]
    assert record["logps/chosen"] == pytest.approx(sum(chosen) / len(chosen), rel=1e-4)
    assert record["logps/rejected"] == pytest.approx(sum(rejected) / len(rejected), rel=1e-4)
    unquantised = [answer_logps(full, e["prompt_ids"], e["chosen_ids"]) for e in examples]
    assert abs(sum(unquantised) / len(unquantised) - record["logps/chosen"]) > 1e-2  # quantisation was applied


def test_kto_quantised_first_step_by_hand(tiny_model_dir, toy_data, tmp_path):
    """KTO on split pairs: rewards and the KL estimate are 0 at step 1 (adapter reference), so each row's loss is
    1 − σ(0) = 0.5; the log-probs of desirable answers are the quantised model's."""
    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, model={"quantization": "nf4"},
                         train={**STILL, "batch_size": 32}, data={"split_pairs": True})  # fmt: skip
    config["method"] = {"loss": "kto", "beta": 0.1}
    prefalign.train(config, quiet=True)
    record = first_train_record(run_dir)
    assert record["loss"] == pytest.approx(0.5, abs=1e-6)
    policy = adapter_policy(tiny_model_dir, run_dir)
    examples = prepared(run_dir, tiny_model_dir)
    desirable = [answer_logps(policy, e["prompt_ids"], e["completion_ids"]) for e in examples if e["label"]]
    assert len(desirable) == 16
    assert record["logps/chosen"] == pytest.approx(sum(desirable) / 16, rel=1e-4)


def test_orpo_quantised_first_step_by_hand(tiny_model_dir, toy_data, tmp_path):
    """ORPO (no reference): L = −log π(y_w)/|y_w| − λ log σ(log odds(y_w) − log odds(y_l)), averaged over pairs."""
    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, model={"quantization": "nf4"}, train=STILL)
    config["method"] = {"loss": "orpo", "lambda": 0.1}
    prefalign.train(config, quiet=True)
    record = first_train_record(run_dir)

    policy = adapter_policy(tiny_model_dir, run_dir)
    losses = []
    for e in prepared(run_dir, tiny_model_dir):
        chosen = answer_logps(policy, e["prompt_ids"], e["chosen_ids"]) / len(e["chosen_ids"])
        rejected = answer_logps(policy, e["prompt_ids"], e["rejected_ids"]) / len(e["rejected_ids"])
        log_odds = (chosen - math.log1p(-math.exp(chosen))) - (rejected - math.log1p(-math.exp(rejected)))
        losses.append(-chosen - 0.1 * -math.log1p(math.exp(-log_odds)))
    assert record["loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-4)


def test_reward_model_quantised_first_step_by_hand(tiny_model_dir, toy_data, tmp_path):
    """A Bradley–Terry reward model on an nf4 backbone: the new `score` head stays unquantised and trains whole;
    the loss is −log σ(r_w − r_l) with the rewards transformers' own sequence-classification forward gives."""
    import bitsandbytes as bnb
    from peft import PeftModel

    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, model={"quantization": "nf4"}, train=STILL)
    config["method"] = {"kind": "reward"}
    prefalign.train(config, quiet=True)
    record = first_train_record(run_dir)

    base = quantized_base(tiny_model_dir, "nf4", kind="reward")
    assert isinstance(base.model.layers[0].mlp.up_proj, bnb.nn.Linear4bit)
    assert not isinstance(base.score, bnb.nn.Linear4bit)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "adapter")
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    losses = []
    with torch.no_grad():
        for e in prepared(run_dir, tiny_model_dir):
            r_w = model(input_ids=torch.tensor([e["prompt_ids"] + e["chosen_ids"]])).logits.item()
            r_l = model(input_ids=torch.tensor([e["prompt_ids"] + e["rejected_ids"]])).logits.item()
            losses.append(math.log1p(math.exp(-(r_w - r_l))))
    assert record["loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-4)


def test_sft_adapter_continues_quantised_and_is_the_reference(tiny_model_dir, toy_data, tmp_path):
    """model.adapter on a quantised base: the policy starts as the SFT adapter and the reference is that adapter
    (loss log 2 at step 1), not the bare quantised base."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    sft = tmp_path / "sft"
    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)  # B ≠ 0
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora).save_pretrained(sft)

    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, model={"quantization": "nf4", "adapter": str(sft)},
                         train=STILL, reference={"mode": "adapter"})  # fmt: skip
    prefalign.train(config, quiet=True)
    record = first_train_record(run_dir)
    assert record["loss"] == pytest.approx(math.log(2), abs=1e-6)

    examples = prepared(run_dir, tiny_model_dir)
    with_sft = PeftModel.from_pretrained(quantized_base(tiny_model_dir, "nf4"), sft).eval()
    bare = quantized_base(tiny_model_dir, "nf4").eval()
    sft_logps = [answer_logps(with_sft, e["prompt_ids"], e["chosen_ids"]) for e in examples]
    bare_logps = [answer_logps(bare, e["prompt_ids"], e["chosen_ids"]) for e in examples]
    assert record["logps/chosen"] == pytest.approx(sum(sft_logps) / 16, rel=1e-4)
    assert abs(sum(bare_logps) / 16 - record["logps/chosen"]) > 1e-2


# ---------------------------------------------------------------------------------------------- layouts, resume


def test_layouts_give_padded_logps_and_gradients_on_a_quantised_policy(tiny_model_dir, tokenizer):
    from tests.test_layouts import logps_and_grads, random_examples
    from tests.test_logps import assert_same_gradient

    config = load_config({"model": {"path": str(tiny_model_dir), "quantization": "nf4", "lora": {"r": 4}},
                          "data": {"train": "x"}})  # fmt: skip
    policy = load_policy(config.model)
    with torch.no_grad():  # a non-zero adapter, so its gradient depends on every position
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    examples = random_examples(len(tokenizer), 6, "paired", seed=3)
    pad = tokenizer.pad_token_id
    expected, expected_grads = logps_and_grads(policy, examples, "padded", False, pad)
    assert expected_grads and all("lora_" in n for n in expected_grads)
    for layout in ("packed", "prefix_shared", "prefix_shared_packed"):
        got, grads = logps_and_grads(policy, examples, layout, False, pad)
        torch.testing.assert_close(got.logps, expected.logps, rtol=1e-5, atol=1e-5)
        for name, grad in grads.items():
            assert_same_gradient(grad, expected_grads[name], name)


def test_quantised_run_resumes_with_the_same_losses(tiny_model_dir, toy_data, tmp_path):
    """4 steps straight vs the same run stopped after its step-2 checkpoint and resumed: the same losses."""
    settings = {"max_steps": 4, "save_every": 2, "batch_size": 4, "lr": 1e-2}
    straight = tmp_path / "straight"
    prefalign.train(tiny_config(tiny_model_dir, toy_data, straight, model={"quantization": "nf4"}, train=settings),
                    quiet=True)  # fmt: skip
    # A run that stopped after step 2: its directory as it was then (the checkpoint, metrics up to step 2).
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for name in ("adapter", "result.json", "README.md"):
        path = resumed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    assert [p.name for p in (resumed / "checkpoints").iterdir()] == ["step-2"]
    config = tiny_config(tiny_model_dir, toy_data, resumed, model={"quantization": "nf4"},
                         train={**settings, "resume": True})  # fmt: skip
    prefalign.train(config, quiet=True)
    a = [r for r in read_metrics(straight / "metrics.jsonl") if r["split"] == "train"]
    b = [r for r in read_metrics(resumed / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5), (x["step"], x["loss"], y["loss"])  # as test_train


# ---------------------------------------------------------------------------------------------- merging


def test_quantised_run_merges_into_the_dequantised_base(tiny_model_dir, toy_data, tmp_path):
    """merged/ of an nf4 run is a plain bf16 transformers model: the nf4 base dequantised with the adapter added,
    so it gives the logits of the adapter on the dequantised base (to bf16 rounding; exactly in fp32 through
    `prefalign merge --dtype fp32`)."""
    import json

    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    from typer.testing import CliRunner

    from prefalign.cli import app

    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, model={"quantization": "nf4"},
                         train={"max_steps": 2, "lr": 1e-2}, output={"save": ["adapter", "merged"]})  # fmt: skip
    prefalign.train(config, quiet=True)
    merged_dir = run_dir / "merged"
    assert "quantization_config" not in json.loads((merged_dir / "config.json").read_text())
    assert {t.dtype for t in load_file(merged_dir / "model.safetensors").values()} == {torch.bfloat16}

    base = quantized_base(tiny_model_dir, "nf4").dequantize(dtype=torch.float32).float()
    expected_model = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    bare = quantized_base(tiny_model_dir, "nf4").dequantize(dtype=torch.float32).float().eval()
    ids = torch.tensor([[1, 520, 3000, 42, 7, 99, 1500, 8]])
    with torch.no_grad():
        expected = expected_model(ids).logits
        without_adapter = bare(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()(ids).logits
    assert (expected - without_adapter).abs().max() > 0.05  # the adapter changed the model
    torch.testing.assert_close(merged, expected, rtol=0, atol=0.05)  # bf16 weights: ~3 significant digits
    assert torch.equal(merged.argmax(-1), expected.argmax(-1))

    runner = CliRunner()
    exact = tmp_path / "merged-fp32"
    result = runner.invoke(app, ["merge", str(run_dir), "--dtype", "fp32", "--out", str(exact)])
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        fp32 = AutoModelForCausalLM.from_pretrained(exact).eval()(ids).logits
    torch.testing.assert_close(fp32, expected, rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged-fp32", "run", "toy.jsonl"]

    again = runner.invoke(app, ["merge", str(run_dir), "--dtype", "fp32", "--out", str(exact)])
    assert again.exit_code == 2 and "give --overwrite to replace it" in again.output
    assert runner.invoke(app, ["merge", str(run_dir), "--out", str(exact), "--overwrite"]).exit_code == 0
    bad = runner.invoke(app, ["merge", str(run_dir), "--dtype", "int4", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--dtype: 'int4' is not one of bf16, fp16, fp32" in bad.output


def test_merge_needs_a_saved_adapter(tiny_model_dir, toy_data, tmp_path):
    from typer.testing import CliRunner

    from prefalign.cli import app

    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, train={"max_steps": 1}, output={"save": []})
    prefalign.train(config, quiet=True)
    result = CliRunner().invoke(app, ["merge", str(run_dir)])
    assert result.exit_code == 2 and "no saved adapter (adapter_config.json)" in result.output
    result = CliRunner().invoke(app, ["merge", str(tmp_path)])
    assert result.exit_code == 2 and "no config.yaml" in result.output
