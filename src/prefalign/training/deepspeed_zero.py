"""DeepSpeed ZeRO-2/3 through accelerate (`accelerate launch --config_file examples/accelerate/deepspeed_zero3.yaml`).

accelerate turns the trained model and its optimizer into a DeepSpeed engine; its backward runs DeepSpeed's
backward *and* optimizer step (clipping, update, zero_grad), so the loop's own optimizer.step is a no-op there.
What prefalign adds around that:

- the settings DeepSpeed's config leaves `auto` come from the run's config (micro-batch, clipping), and what
  prefalign does not do under DeepSpeed yet is refused before any weight loads;
- models load whole, whatever zero3_init_flag says: transformers would build every model under
  `deepspeed.zero.Init` once accelerate has registered a ZeRO-3 config (the memory plan's meta model, the frozen
  reference copy and rank 0's unsharded copy included, the last on one process alone: it would wait for the
  others); prefalign loads them as on one process and `deepspeed.initialize` partitions them when training starts;
- ZeRO-3's frozen reference is partitioned for inference like the policy (TRL's `prepare_deepspeed`);
- the trained weights are gathered to rank 0 (accelerate's `get_state_dict`) for the answers and the outputs.

Runs on CPU too: DeepSpeed's CPU accelerator uses gloo when Intel's oneCCL bindings are absent (see
training.distributed.use_cpu_group_if_needed).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from prefalign.config import ConfigError, MethodConfig, TrainConfig


def zero_stage(accelerator) -> int | None:
    """The ZeRO stage of a DeepSpeed run (0-3), None for any other."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if accelerator.distributed_type.value != "DEEPSPEED" or plugin is None:
        return None
    return int(plugin.zero_stage)


def check_settings(accelerator, train: TrainConfig, method: MethodConfig) -> None:
    """At set-up, before any weight loads: refuse what prefalign does not do under DeepSpeed, fill the clipping
    DeepSpeed's config leaves `auto`, and let models load whole (module docstring)."""
    stage = zero_stage(accelerator)
    if stage is None:
        return
    plugin = accelerator.state.deepspeed_plugin
    if train.grad_accum > 1:  # accelerate's DeepSpeed backward steps the optimizer at every call
        raise ConfigError(
            "train.grad_accum: under DeepSpeed prefalign takes one micro-batch a step for now; set train.grad_accum: "
            "1 and raise train.batch_size or the process count, or use FSDP2 (examples/accelerate/fsdp2.yaml)"
        )
    if train.save_every or train.resume:  # DeepSpeed's optimizer state is partitioned its own way
        raise ConfigError(
            "train.save_every / train.resume: checkpoints are not written under DeepSpeed yet; leave them unset, or "
            "use FSDP2 (examples/accelerate/fsdp2.yaml), whose checkpoints hold each process's shards"
        )
    if train.on_nonfinite == "skip_step":  # the check comes after DeepSpeed's own step has updated the weights
        raise ConfigError(
            "train.on_nonfinite: skip_step cannot drop a step under DeepSpeed (its backward already made the update); "
            "use stop, or FSDP2 (examples/accelerate/fsdp2.yaml)"
        )
    config = plugin.deepspeed_config
    clipping = train.max_grad_norm or 0.0  # DeepSpeed's 0: no clipping
    if config.get("gradient_clipping", "auto") == "auto":
        config["gradient_clipping"] = clipping
    elif float(config["gradient_clipping"]) != clipping:
        raise ConfigError(
            f"train.max_grad_norm is {train.max_grad_norm} but the DeepSpeed config clips at "
            f"{config['gradient_clipping']}: remove gradient_clipping from the accelerate config (prefalign then "
            "fills it from train.max_grad_norm) or make the two equal"
        )
    if stage == 3:
        if method.kind == "reward" and method.lm_coef > 0:  # scoring.reward_model reads a tied head's weight directly
            raise ConfigError(
                "method.lm_coef: a reward model's LM term is not built under ZeRO-3 (it reads the embedding weight "
                "outside its module, where ZeRO-3 leaves it partitioned); set method.lm_coef: 0, or use ZeRO-2 "
                "(examples/accelerate/deepspeed_zero2.yaml) or FSDP2"
            )
        zero = config["zero_optimization"]
        gather = "stage3_gather_16bit_weights_on_model_save"
        if zero.get(gather, "auto") == "auto":
            zero[gather] = True
        elif not zero[gather]:
            raise ConfigError(
                "zero3_save_16bit_model: false in the accelerate config: rank 0 writes the adapter and merged model "
                "from the gathered weights; set zero3_save_16bit_model: true"
            )
        load_models_whole()


def load_models_whole() -> None:
    """Keep transformers from building models under `deepspeed.zero.Init`: it does so whenever accelerate has
    registered a ZeRO-3 config (HfDeepSpeedConfig), which also makes its `generate` wait for every process."""
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def set_micro_batch(accelerator, batch_size: int) -> None:
    """DeepSpeed's config needs the micro-batch, which accelerate reads from a prepared data loader, and
    prefalign prepares none: set it from train.batch_size (after train.memory's choice) when it is `auto`."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin.is_auto("train_micro_batch_size_per_gpu"):
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = batch_size


def reference_for_inference(scorer: nn.Module, accelerator) -> nn.Module:
    """ZeRO-3: the frozen reference scorer partitioned like the policy, as an inference engine (TRL's
    `prepare_deepspeed`: the run's DeepSpeed config without its optimizer, scheduler and optimizer offload, for
    no optimizer is given). Other stages keep the whole reference on every process, as it is."""
    if zero_stage(accelerator) != 3:
        return scorer
    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    config["zero_optimization"].pop("offload_optimizer", None)
    engine, *_ = deepspeed.initialize(model=scorer, config=config)
    engine.eval()
    return engine


def full_state_on_main(accelerator) -> dict[str, torch.Tensor] | None:
    """ZeRO-3, every process: the trained scorer's full state gathered layer by layer; rank 0 gets it (on the
    CPU, keyed as the scorer's own state_dict), the others None."""
    engine = accelerator.deepspeed_engine_wrapped.engine
    return accelerator.get_state_dict(engine)
