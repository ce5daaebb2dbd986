"""The memory plan: peak memory of one training process, estimated from the model's shape and the data's tokens.

On several processes it is the plan of each one: what sharding splits (SHARDED: FSDP's and ZeRO-3's weights,
gradients and optimizer state, ZeRO-2's gradients and optimizer state) counts 1/processes, and the parameters
FSDP or ZeRO-3 gather while a layer runs are added; data parallel adds DDP's gradient buckets.

A pure function of numbers: `estimate_memory(shape, workload, settings)` loads nothing and touches no device.
What it counts, for a Llama-style decoder layer (norm → attention → norm → gated MLP), per token the tensors
autograd keeps for backward:

- each RMSNorm's input (the residual stream), and its normalised output where a norm weight trains;
- the input of every linear layer whose weight trains or that carries a LoRA adapter (frozen-only layers keep
  nothing: their input gradient needs only the weight); under autocast every such input is its own cast copy;
- attention: query, key and value after RoPE, the output and its log-sum-exp (SDPA's fused kernels keep no
  score matrix; the padded layout's boolean mask is [rows, T, T] bytes);
- the gated MLP: gate, its SiLU, up and their product (4 × intermediate), or 3 × intermediate with
  train.fused_mlp (model/fused.py: the SiLU is recomputed in backward);
- LoRA: each adapter's r-wide middle.

With gradient checkpointing a layer keeps only its input; backward recomputes one layer at a time. The LM head
runs a chunk of positions at a time (logps.py), so its logits are a transient of one chunk; with a frozen head
the forward keeps each scored position's input gradient (scored × hidden), with a trained one its input.

The step's peak is the largest of: the end of the forward (all activations + the LM-head chunk), the start of
backward (the same + a trained head's gradient), the end of backward (all gradients) and the optimizer step;
on top of what lives the whole run (weights, a reference copy, optimizer state). Gradients and activations are
not added: backward frees a layer's activations as it writes that layer's gradients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from prefalign.memory.shape import ModelShape

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Bytes of optimizer state per trainable parameter: AdamW keeps two float32 moments; the 8-bit optimizers of
# bitsandbytes two 8-bit ones (+ a block scale each, ~1%); Lion one moment; SGD without momentum none.
OPTIMIZER_STATE_BYTES = {
    "adamw": 8.0, "adam": 8.0, "adamw_torch": 8.0, "paged_adamw": 8.0, "adamw_fused": 8.0,
    "adamw_8bit": 2.04, "paged_adamw_8bit": 2.04, "adam_8bit": 2.04,
    "lion": 4.0, "paged_lion": 4.0, "lion_8bit": 1.02, "paged_lion_8bit": 1.02,
    "sgd": 0.0,
}  # fmt: skip
# Bytes per weight of a quantised linear layer (bitsandbytes): 4-bit values + one float32 absmax per 64; int8
# values + one float32 scale per output row (~0).
QUANTISED_BYTES = {"nf4": 0.5 + 4 / 64, "fp4": 0.5 + 4 / 64, "int8": 1.0}
# What a training process holds besides its tensors: the model's code, the tokenizer made again by the run, the
# math libraries' buffers (BLAS packing, OpenMP). Measured on CPU (2026-12-03, tests/memory_probe.py): a
# run of the 2-layer test model on 20-token pairs peaked 87 MiB above its baseline with 25 MiB of tensors.
# On a GPU the CUDA context takes device memory of its own (a few hundred MiB, not measured here).
RUNTIME_BYTES = {"cpu": 96 * 2**20, "cuda": 512 * 2**20}
# What each kind of sharding splits across the processes (every process holds 1/processes of it): none (one
# process, or data parallel: every process holds everything), ZeRO-1's optimizer state, ZeRO-2's gradients too,
# and FSDP's or ZeRO-3's parameters as well (a frozen reference copy is sharded the same way).
SHARDED = {
    "none": (),
    "optimizer": ("optimizer",),
    "gradients": ("gradients", "optimizer"),
    "parameters": ("weights", "reference", "gradients", "optimizer"),
}
# logps.CHUNK_LOGITS_BYTES, repeated here so that the plan stays free of torch: float32 logits of one chunk.
CHUNK_LOGITS_BYTES = 48 * 2**20


@dataclass(frozen=True)
class Workload:
    """The heaviest micro-batch's token counts, as its layout builds it (data.layout)."""

    rows: int  # rows of the batch
    width: int  # positions per row (the longest, padding included)
    scored: int  # positions whose next token is scored (through the LM head)
    layout: str = "padded"
    # Prompt positions a later answer's attention block re-reads (the segment attention concatenates the
    # prompt's keys and values to the answer's own): Σ prompt length over the answers after the first.
    reread_prompt: int = 0

    @property
    def tokens(self) -> int:
        """Positions the backbone runs, padding included."""
        return self.rows * self.width


@dataclass(frozen=True)
class Settings:
    """Everything about a run that moves its memory, as plain values (the lead passes config values in)."""

    lora_rank: int | None = 16  # None: full fine-tuning
    weight_dtype: str = "float32"  # model.dtype as loaded
    precision: str = "no"  # train.mixed_precision, resolved: no, bf16, fp16
    optimizer: str = "adamw"
    quantization: str | None = None  # nf4, fp4, int8 (bitsandbytes; LoRA on top)
    reference: str = "adapter"  # model (a second copy), adapter, precomputed, none
    gradient_checkpointing: bool = False
    fused_mlp: bool = False  # train.fused_mlp (it applies where the shape's MLPs are fusable)
    activation_offload: bool = False  # train.activation_offload (it applies on a GPU)
    lm_head: bool = True  # False for a reward model: a scalar head, no vocabulary
    device: str = "cpu"  # cpu or cuda: the runtime's own memory (RUNTIME_BYTES)
    processes: int = 1  # processes the run is spread over; the plan is of one of them
    sharding: str = "none"  # what each process holds 1/processes of (SHARDED)


@dataclass(frozen=True)
class Component:
    name: str
    bytes: int
    note: str = ""


@dataclass
class MemoryPlan:
    components: list[Component]
    peak: int  # bytes: the estimated peak of the process's tensors
    moment: str  # when the peak happens
    settings: Settings
    workload: Workload
    notes: list[str] = field(default_factory=list)

    def component(self, name: str) -> int:
        return next((c.bytes for c in self.components if c.name == name), 0)

    def as_dict(self) -> dict:
        """For result.json: every component in bytes, the peak, and what it was estimated for."""
        return {
            "peak_bytes": self.peak,
            "moment": self.moment,
            "components": {c.name: c.bytes for c in self.components},
            "settings": asdict(self.settings),
            "workload": {**asdict(self.workload), "tokens": self.workload.tokens},
            "notes": self.notes,
        }


def optimizer_state_bytes(optimizer: str) -> tuple[float, str]:
    """Bytes of state per trainable parameter, and a note when the optimizer is not one the plan knows."""
    if optimizer in OPTIMIZER_STATE_BYTES:
        return OPTIMIZER_STATE_BYTES[optimizer], ""
    return 8.0, f"optimizer {optimizer!r} is not one the plan knows: its state is counted as AdamW's"


def _layer_activation_bytes(shape: ModelShape, s: Settings, layout: str) -> float:
    """Bytes a decoder layer keeps for backward, per token."""
    autocast = s.precision in ("bf16", "fp16")
    weight = DTYPE_BYTES[s.weight_dtype]
    act = 2 if autocast else weight  # what the matrix products read and write
    residual = max(weight, 4) if autocast else weight  # the residual stream stays in the weights' dtype
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_heads * shape.head_dim
    full = s.lora_rank is None
    norms = 2 * h * residual * (2 if full else 1)  # the two norms' inputs, and their outputs when norm weights train
    # The normalised inputs of q/k/v and of gate/up: one tensor each in the weights' dtype; under autocast each
    # projection casts its own copy (autocast caches the casts of weights, not of activations).
    projection_inputs = (5 if autocast else 2) * h * act
    # Padded rows go through transformers' SDPA call, which repeats grouped key/value heads to every query head
    # before the kernel (so they are kept that wide); the segment attention passes them grouped (enable_gqa).
    kv_kept = shape.heads * shape.head_dim if layout == "padded" else kv
    attention = (2 * h + 2 * kv_kept) * act + shape.heads * 4  # q, k, v after RoPE, the output; log-sum-exp
    o_input = h * act  # the output heads made contiguous for o_proj
    fused = s.fused_mlp and shape.fusable_mlp  # SiLU(gate) recomputed in backward instead of kept
    mlp = (3 if fused else 4) * i * act  # gate, SiLU(gate), up, and their product (down_proj's input)
    lora = 0 if full else 7 * (s.lora_rank or 0) * act
    return norms + projection_inputs + attention + o_input + mlp + lora


@dataclass(frozen=True)
class _Resident:
    """What lives the whole run: weights (+ LoRA), a reference copy, gradients and optimizer state."""

    weights: int
    reference: int
    gradients: int
    optimizer: int
    lora_parameters: int
    state_per_parameter: float


def _resident(shape: ModelShape, s: Settings, notes: list[str]) -> _Resident:
    weight = DTYPE_BYTES[s.weight_dtype]
    full = s.lora_rank is None
    # A quantised base keeps its decoder linears in 4 or 8 bits, the rest in the weights' dtype.
    base = shape.parameters * weight
    if s.quantization:
        if s.quantization not in QUANTISED_BYTES:
            raise ValueError(f"quantization: unknown {s.quantization!r}; known: {', '.join(QUANTISED_BYTES)}")
        base -= shape.linear_parameters * (weight - QUANTISED_BYTES[s.quantization])
        if weight < 4 and s.precision not in ("bf16", "fp16"):  # QLoRA's preparation upcasts the unquantised
            base += (shape.parameters - shape.linear_parameters) * (4 - weight)  # 16-bit weights (model/load.py)
    lora_parameters = 0 if full else shape.lora_parameters(s.lora_rank or 0)
    trainable = shape.parameters if full else lora_parameters
    trainable_bytes = weight if full else 4  # PEFT keeps adapter weights in float32
    state_per_parameter, note = optimizer_state_bytes(s.optimizer)
    if note:
        notes.append(note)
    whole = {
        "weights": int(base + lora_parameters * 4),
        "reference": int(base) if s.reference == "model" else 0,
        "gradients": trainable * trainable_bytes,
        "optimizer": int(trainable * state_per_parameter),
    }
    if s.sharding not in SHARDED:
        raise ValueError(f"sharding: unknown {s.sharding!r}; known: {', '.join(SHARDED)}")
    # A shard is 1/processes of each tensor, rounded up (the last process's is padded to the same size).
    own = {name: -(-size // s.processes) if name in SHARDED[s.sharding] else size for name, size in whole.items()}
    return _Resident(**own, lora_parameters=lora_parameters, state_per_parameter=state_per_parameter)


def _buckets(resident: _Resident, s: Settings) -> int:
    """Data parallel on several processes: DDP's gradient buckets, a second copy of the gradients that it
    all-reduces (accelerate's default, gradient_as_bucket_view off), allocated when the model is wrapped."""
    return resident.gradients if s.processes > 1 and s.sharding == "none" else 0


def _gathered(shape: ModelShape, s: Settings) -> int:
    """Parameters sharding makes whole again while they run: the weights outside the decoder layers (embeddings,
    final norm, LM head: FSDP's root unit, gathered through forward and backward) and one decoder layer at a time.
    ZeRO-3 gathers module by module, so this is its upper end."""
    if s.sharding != "parameters" or s.processes == 1:
        return 0
    per_layer = shape.linear_parameters / shape.layers
    outside = shape.parameters - shape.linear_parameters
    return int((outside + per_layer) * DTYPE_BYTES[s.weight_dtype])  # all-gathered into buffers of their own


def _outside_layers(shape: ModelShape, workload: Workload, s: Settings) -> int:
    """Activations kept outside the decoder layers' own: the final norm, RoPE's tables, the padded layout's
    mask copies, the prompt keys and values re-read by later answers, autocast's weight copies, and the LM
    head's per-position inputs or input gradients."""
    weight = DTYPE_BYTES[s.weight_dtype]
    autocast = s.precision in ("bf16", "fp16")
    full = s.lora_rank is None
    tokens = workload.tokens
    residual = max(weight, 4) if autocast else weight
    outside = shape.hidden * residual * (2 if full else 1) * tokens  # the final norm's input (+ output if it trains)
    outside += 2 * shape.head_dim * 4 * tokens  # RoPE's cos and sin, shared by the layers
    act = 2 if autocast else weight
    kept_layers = 1 if s.gradient_checkpointing else shape.layers
    if workload.layout == "padded":  # the padding mask reaches each layer's SDPA as a float [rows, 1, T, T] copy
        outside += kept_layers * workload.rows * workload.width**2 * 4
    # The prompt keys and values a later answer's block concatenates to its own, kept by its SDPA call.
    outside += kept_layers * 2 * workload.reread_prompt * shape.kv_heads * shape.head_dim * act
    if autocast:  # the half-precision copies of the linear weights, kept for backward (or cached by autocast)
        outside += shape.linear_parameters * 2
    if s.lm_head:
        outside += workload.scored * shape.hidden * 4  # per scored position: input gradient (frozen) or input
    return outside


def _layer_activations(shape: ModelShape, workload: Workload, s: Settings) -> tuple[int, float]:
    """(bytes the decoder layers keep for backward, bytes per position and layer without checkpointing)."""
    weight = DTYPE_BYTES[s.weight_dtype]
    residual = max(weight, 4) if s.precision in ("bf16", "fp16") else weight
    per_layer = _layer_activation_bytes(shape, s, workload.layout)
    tokens = workload.tokens
    if s.activation_offload and s.device == "cuda":  # kept in CPU memory; backward brings back one layer's
        return int(per_layer * tokens), per_layer
    if s.gradient_checkpointing:  # each layer keeps its input; backward recomputes one layer at a time
        return int(shape.layers * shape.hidden * residual * tokens + per_layer * tokens), per_layer
    return int(shape.layers * per_layer * tokens), per_layer


def _activations_note(shape: ModelShape, s: Settings, per_layer: float) -> str:
    if s.activation_offload and s.device == "cuda":
        return "offloaded to CPU memory, one layer's back at a time"
    if s.gradient_checkpointing:
        return "checkpointed per layer"
    return f"{per_layer * shape.layers / 2**20:.2f} MiB per position"


def _head(shape: ModelShape, workload: Workload, s: Settings) -> tuple[int, int, int]:
    """(positions per LM-head chunk, bytes of one chunk's logits and temporaries, a trained head's gradient)."""
    weight = DTYPE_BYTES[s.weight_dtype]
    autocast = s.precision in ("bf16", "fp16")
    v = shape.vocab
    # One chunk of float32 logits and a temporary as large (logsumexp's, or the gradient in backward).
    chunk = min(workload.scored, max(16, CHUNK_LOGITS_BYTES // (4 * v))) if s.lm_head else 0
    head_chunk = 2 * chunk * v * 4 + (chunk * v * 2 if autocast else 0)
    head_trains = s.lora_rank is None and s.lm_head
    gradient = shape.embedding_parameters * weight if head_trains and shape.tied_head else 0
    gradient += shape.head_parameters * weight if head_trains else 0
    return chunk, head_chunk, gradient


def estimate_memory(shape: ModelShape, workload: Workload, settings: Settings | None = None) -> MemoryPlan:
    """The estimated peak memory of one training process and its components (see the module docstring)."""
    s = settings or Settings()
    notes: list[str] = []
    full = s.lora_rank is None
    weight = DTYPE_BYTES[s.weight_dtype]
    resident = _resident(shape, s, notes)
    layer_activations, per_layer = _layer_activations(shape, workload, s)
    outside = _outside_layers(shape, workload, s)
    activations = layer_activations + outside
    chunk, head_chunk, head_gradient = _head(shape, workload, s)
    # Backward's own temporaries, one layer at a time: the gradients of the MLP's intermediate tensors.
    workspace = int(3 * shape.intermediate * (2 if s.precision in ("bf16", "fp16") else weight) * workload.tokens)

    moments = {
        "end of forward": activations + head_chunk,
        "start of backward": activations + head_chunk + head_gradient + workspace,
        "end of backward": resident.gradients + outside + workspace
        + (shape.embedding_parameters * weight if full else 0),  # the embedding's gradient before it is added
        "optimizer step": resident.gradients + 2 * (shape.largest_tensor if full else 0) * 4,
    }  # fmt: skip
    moment = max(moments, key=moments.__getitem__)
    runtime = RUNTIME_BYTES.get(s.device, RUNTIME_BYTES["cpu"])
    gathered, buckets = _gathered(shape, s), _buckets(resident, s)
    peak = runtime + resident.weights + resident.reference + resident.optimizer + gathered + buckets
    peak += moments[moment]

    what = "all weights" if full else f"LoRA r{s.lora_rank}"
    lora = resident.lora_parameters
    sharded = SHARDED[s.sharding] if s.processes > 1 else ()

    def share(name: str) -> str:
        return f"; 1/{s.processes} on each process" if name in sharded else ""

    components = [
        Component("runtime", runtime, "model code, tokenizer, math libraries' buffers"
                  + (" (CUDA context)" if s.device == "cuda" else "")),
        Component("weights", resident.weights, f"{shape.parameters / 1e6:.0f}M parameters in {s.weight_dtype}"
                  + (f", linear layers {s.quantization}" if s.quantization else "")
                  + ("" if full else f" + {lora / 1e6:.2f}M LoRA in float32") + share("weights")),
        Component("gathered weights", gathered, "whole while they run: one decoder layer, and the embeddings "
                  "and head (FSDP's root unit)"),
        Component("reference", resident.reference, {"model": "a frozen copy", "adapter": "the policy, adapter off",
                                                    "precomputed": "cached log-probs", "none": "no reference"}
                  .get(s.reference, s.reference) + (share("reference") if resident.reference else "")),
        Component("gradients", resident.gradients, what + share("gradients")),
        Component("gradient buckets", buckets, "DDP's copy of the gradients it all-reduces"),
        Component("optimizer state", resident.optimizer,
                  f"{s.optimizer}, {resident.state_per_parameter:g} B per trainable parameter" + share("optimizer")),
        Component("activations", activations, f"{workload.tokens} positions ({workload.rows} rows × "
                  f"{workload.width}, {workload.layout}), " + _activations_note(shape, s, per_layer)),
        Component("LM-head chunk", head_chunk + head_gradient,
                  f"{chunk} of {workload.scored} scored positions × {shape.vocab} logits"
                  + (", + the head's gradient" if head_gradient else "")),
        Component("backward workspace", workspace, "one layer's gradients in flight"),
    ]  # fmt: skip
    return MemoryPlan(components, int(peak), moment, s, workload, notes)
