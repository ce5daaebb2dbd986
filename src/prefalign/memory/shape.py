"""What the memory plan needs to know about a model, read from its config alone (no weights are loaded).

The parameter counts come from the model built on the meta device (`AutoModelForCausalLM.from_config` under
`torch.device("meta")`: shapes only, no storage), so they are exact for any architecture transformers knows;
the activation sizes use the decoder layer's dimensions (hidden, intermediate, heads), as a Llama-style
layer stores them (estimate.py says which tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prefalign.model.fused import fusable

# Linear layers quantised by bitsandbytes: those inside the decoder layers (the embeddings and the LM head stay).
_NOT_QUANTISED = ("lm_head", "score", "embed")


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_head: bool  # the LM head is the input embedding matrix
    parameters: int  # every weight, tied ones once
    linear_parameters: int  # weights of the decoder layers' linear layers (what LoRA adapts, what is quantised)
    head_parameters: int  # the LM head's weights when not tied (0 when tied)
    embedding_parameters: int  # the input embeddings
    largest_tensor: int  # elements of the largest weight (the optimizer's per-tensor temporaries)
    lora_parameters_per_rank: int  # Σ (in + out) over the adapted linear layers: LoRA r adds r times this
    lora_targets: str | tuple[str, ...] = "all-linear"
    fusable_mlp: bool = False  # its gated MLPs are ones train.fused_mlp fuses (model/fused.py)

    def lora_parameters(self, rank: int) -> int:
        return rank * self.lora_parameters_per_rank


def _targeted(name: str, targets: str | tuple[str, ...]) -> bool:
    """PEFT's matching: all-linear is every linear layer but the output layer; a list names module suffixes."""
    if targets == "all-linear":
        return not any(part in name.split(".")[-1] for part in ("lm_head", "score"))
    return name.split(".")[-1] in targets


def shape_of(model: nn.Module, lora_targets: str | list[str] | tuple[str, ...] = "all-linear") -> ModelShape:
    """The shape of a transformers model (on the meta device or loaded)."""
    targets = lora_targets if isinstance(lora_targets, str) else tuple(lora_targets)
    config = model.config.get_text_config()
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    output = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    tied = output is not None and output.weight is embeddings.weight
    seen: set[int] = set()
    total = largest = 0
    for p in model.parameters():  # tied weights are one tensor: count them once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
            largest = max(largest, p.numel())
    linear = lora_per_rank = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module is not output:
            if not any(part in name for part in _NOT_QUANTISED):
                linear += module.weight.numel()
            if _targeted(name, targets):
                lora_per_rank += module.in_features + module.out_features
    return ModelShape(
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        intermediate=getattr(config, "intermediate_size", None) or 4 * config.hidden_size,
        heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=head_dim,
        vocab=config.vocab_size,
        tied_head=tied,
        parameters=total,
        linear_parameters=linear,
        head_parameters=0 if tied or output is None else output.weight.numel(),
        embedding_parameters=embeddings.weight.numel(),
        largest_tensor=largest,
        lora_parameters_per_rank=lora_per_rank,
        lora_targets=targets,
        fusable_mlp=any(fusable(module) for module in model.modules()),
    )


def shape_from_config(hf_config, lora_targets: str | list[str] | tuple[str, ...] = "all-linear") -> ModelShape:
    """The shape of the causal LM a transformers config describes, built on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    return shape_of(model, lora_targets)
