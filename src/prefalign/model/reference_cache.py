"""reference.mode: precomputed — the reference scores the data once, before training, and the values are cached.

One no-grad pass of the reference over the training and held-out data, in the run's batch layout, stores each
example's reference log-probs (and scored-token counts) in `$PREFALIGN_CACHE/reference-logps/KEY.safetensors`,
one file per dataset, written atomically. Training and evaluation then read them by example index (`Rows`).

KEY is a hash of everything that changes the values, and nothing else:
- the reference: what `from_pretrained` reads (the resolved directory and each file's name, size and mtime; a
  hub model by its cached snapshot, whose folder is the commit), revision and dtype; with model.adapter, the
  SFT adapter's files and whether it is merged into the weights (full fine-tuning) or applied as LoRA — the
  two differ in the last bits. Under LoRA the reference is the base model with the adapter disabled, which is
  the same model as the full fine-tuning's frozen copy, so both share a cache;
- the data: a hash of the token ids of every scored sequence (prompt and answers), in dataset order;
- ld_alpha (LD-DPO reweights the reference's tokens too), autocast precision, device type, and the versions of
  torch, transformers and prefalign's log-prob code.
Beta, the loss, batch sizes, the layout (every layout gives the same log-probs) and the optimiser are not in
it: a run that changes only those reads the file and never loads or runs the reference.

Losses with a KL term estimated per micro-batch (kto) score completions mismatched within a batch, which
depend on the batch order; config validation refuses them here.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from prefalign.atomic import write_atomically
from prefalign.config import ModelConfig
from prefalign.data.layout import Batch
from prefalign.data.shards import shard_batches
from prefalign.model.builtin import cache_dir
from prefalign.model.load import load_base, resolve_path
from prefalign.model.reference import AdapterReference, ModelReference, Reference, Rows
from prefalign.scoring.logps import LogpsOptions, SequenceLogps, SequenceScorer, sequence_logps

log = logging.getLogger(__name__)

# Token-id columns whose contents decide which sequences a dataset's examples score.
_SCORED_COLUMNS = (("prompt_ids", "chosen_ids", "rejected_ids"), ("prompt_ids", "completion_ids"))


class CachedReference(Reference):
    """Reference log-probs read from precomputed tables: per split, [N, k] log-probs and token counts, where
    k is the number of sequences per example (2 for pairs: chosen, rejected; 1 for unpaired completions)."""

    mode = "precomputed"

    def __init__(
        self,
        tables: dict[str, tuple[torch.Tensor, torch.Tensor]],
        paths: dict[str, Path],
        computed: tuple[str, ...] = (),
        shares: dict[str, list[int]] | None = None,
    ):
        self.tables = tables
        self.paths = paths  # where each split's values live
        self.computed = computed  # the splits this run scored (the others were read from the cache)
        # per split scored, how many examples each process scored: its share, so every example once
        self.shares = shares or {}

    def summary(self) -> str:
        """One line for the run's output: which splits came from the cache, which were scored."""
        read = [split for split in self.tables if split not in self.computed]
        parts = [f"{', '.join(read)} read from the cache"] if read else []
        if self.computed:
            part = f"{', '.join(self.computed)} scored by the reference and cached"
            counts = [self.shares.get(split, []) for split in self.computed]
            if any(len(c) > 1 for c in counts):  # several processes: each scored its share of the examples
                part += " (examples per process: " + "; ".join(" + ".join(map(str, c)) for c in counts) + ")"
            parts.append(part)
        folder = next(iter(self.paths.values())).parent if self.paths else cache_dir() / "reference-logps"
        return f"Reference log-probs (precomputed): {'; '.join(parts)} ({folder})"

    def logps(self, batch: Batch, rows: Rows | None = None) -> SequenceLogps:
        if rows is None:
            raise ValueError("precomputed reference log-probs are read by example: pass the batch's Rows")
        logps, lengths = self.tables[rows.split]
        index = torch.as_tensor(list(rows.indices), dtype=torch.long)
        # Sequence j·B + i is example i's j-th sequence (layout.py's numbering): column j of the table.
        seq_logps = logps[index].T.reshape(-1)
        seq_lengths = lengths[index].T.reshape(-1)
        device = batch.score_seq.device
        counts = torch.bincount(batch.score_seq, minlength=batch.num_sequences)
        # The token counts come for free and catch a table that does not belong to these examples.
        if batch.num_sequences != len(seq_lengths) or not torch.equal(counts, seq_lengths.to(device)):
            raise RuntimeError(
                f"cached reference log-probs of {rows.split} do not match the batch's sequences; "
                f"delete {self.paths.get(rows.split)} and run again"
            )
        return SequenceLogps(seq_logps.to(device), seq_lengths.to(device), len(index))


class _StartingPolicy(Reference):
    """The policy before its first update, which is what the frozen copy of full fine-tuning would be:
    scoring it directly needs no second model. Its parameters keep requires_grad (they are about to train)."""

    mode = "model"

    def __init__(self, scorer: SequenceScorer, options: LogpsOptions):
        self.scorer = scorer
        self.options = options

    @torch.no_grad()
    def logps(self, batch: Batch, rows: Rows | None = None) -> SequenceLogps:
        return sequence_logps(self.scorer, batch, self.options)


def _files(path: str, revision: str | None) -> dict[str, Any] | None:
    """What identifies a model or adapter directory: its path and every file's name, size and mtime.

    A hub id is looked up in the local hub cache (its snapshot folder is named by the commit); None when the
    model is not there yet, so there is nothing to compare with.
    """
    folder = Path(path)
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(path, "config.json", revision=revision)
        if not isinstance(found, str):
            found = try_to_load_from_cache(path, "adapter_config.json", revision=revision)
        if not isinstance(found, str):
            return None
        folder = Path(found).parent
    entries = []
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not file.is_file():
            continue  # .cache/ and other hidden bookkeeping is not read by from_pretrained
        stat = file.stat()  # follows the hub cache's symlinks to the blobs
        entries.append([str(relative), stat.st_size, stat.st_mtime_ns])
    return {"path": str(folder.resolve()), "files": entries}


def reference_fingerprint(model: ModelConfig, reference_path: str | None) -> dict[str, Any] | None:
    """What the precomputed reference is, as a JSON-able description; None when it cannot be told from disk."""
    if reference_path:  # load_base(model, reference_path)
        files = _files(resolve_path(reference_path), model.revision)
        described = {"model": files, "revision": model.revision, "dtype": model.dtype}
    else:  # the starting policy: the base model, with the SFT adapter if there is one
        files = _files(resolve_path(model.path), model.revision)
        described = {"model": files, "revision": model.revision, "dtype": model.dtype}
        if model.adapter:
            adapter = _files(model.adapter, None)
            if adapter is None:
                return None
            described["adapter"] = adapter
            described["adapter_merged"] = model.lora is None
    if model.quantization:  # a quantised base scores differently; unquantised runs keep their keys
        described["quantization"] = {"type": model.quantization, **model.quantization_options.model_dump()}
    return None if files is None else described


def data_fingerprint(dataset) -> str:
    """A hash of the token ids of every sequence the dataset's examples score, in dataset order."""
    import pyarrow.compute as pc

    names = next(cols for cols in _SCORED_COLUMNS if set(cols) <= set(dataset.column_names))
    digest = hashlib.sha256(json.dumps([len(dataset), names]).encode())
    table = dataset.with_format("arrow")
    step = 16384
    for start in range(0, len(dataset), step):
        chunk = table[start : start + step]  # follows the dataset's indices mapping (select, splits)
        for name in names:
            for array in chunk.column(name).chunks:
                for part in (pc.list_value_length(array), pc.list_flatten(array)):
                    digest.update(part.to_numpy(zero_copy_only=False).astype("int64").tobytes())
    return digest.hexdigest()


def _logps_code() -> str:
    return hashlib.sha256((Path(__file__).parents[1] / "scoring" / "logps.py").read_bytes()).hexdigest()[:16]


def cache_key(reference: dict[str, Any], data: str, options: LogpsOptions, precision: str, device: str) -> str:
    import transformers

    described = {
        "reference": reference,
        "data": data,
        "ld_alpha": options.ld_alpha,
        "precision": precision,
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "logps": _logps_code(),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def cache_path(key: str) -> Path:
    return cache_dir() / "reference-logps" / f"{key}.safetensors"


def _read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    tensors = load_file(path)
    return tensors["logps"], tensors["lengths"]


def _write(path: Path, logps: torch.Tensor, lengths: torch.Tensor, metadata: dict[str, str]) -> None:
    """Write atomically: a temp file in the same folder, renamed over the target (a killed or concurrent
    run never leaves half a file under a key)."""
    from safetensors.torch import save_file

    tensors = {"logps": logps.contiguous(), "lengths": lengths.contiguous()}
    write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata), directory=False)


@torch.no_grad()
def score_batches(
    reference: Reference, batches: Iterable[tuple[Rows, Batch]]
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(indices, [n, k] log-probs, [n, k] token counts) of the examples of `batches` (`data.shards.shard_batches`:
    this process's share of a dataset)."""
    indices, logps, lengths = [], [], []
    for rows, batch in batches:
        out = reference.logps(batch)
        indices.extend(rows.indices)
        logps.append(out.logps.float().reshape(-1, len(rows.indices)).T.cpu())
        lengths.append(out.lengths.reshape(-1, len(rows.indices)).T.cpu())
    if not indices:
        return [], torch.zeros(0, 0), torch.zeros(0, 0, dtype=torch.long)
    return indices, torch.cat(logps), torch.cat(lengths)


def _assemble(shares: list[tuple[list[int], torch.Tensor, torch.Tensor]], size: int) -> tuple[torch.Tensor, ...]:
    """Every process's (indices, log-probs, counts) share put back in dataset order."""
    k = max(share[1].shape[1] for share in shares if share[0])
    logps, lengths = torch.zeros(size, k), torch.zeros(size, k, dtype=torch.long)
    for indices, share_logps, share_lengths in shares:
        if indices:
            logps[indices], lengths[indices] = share_logps, share_lengths
    return logps, lengths


@contextmanager
def _reference_for_pass(
    model_config: ModelConfig, reference_path: str | None, scorer: SequenceScorer, options: LogpsOptions, device
) -> Iterator[Reference]:
    """The reference the live modes would use, for the one pass; a separately loaded model is freed after it."""
    was_training = scorer.training
    scorer.eval()  # no dropout in the reference
    try:
        if reference_path:
            log.info("loading the reference model %s", reference_path)
            model = load_base(model_config, reference_path).to(device)
            try:
                yield ModelReference(model, scorer.chunk_size, options)
            finally:
                del model
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        elif model_config.lora is not None:
            yield AdapterReference(scorer, options)  # the base (or the SFT adapter): no second copy
        else:
            yield _StartingPolicy(scorer, options)
    finally:
        scorer.train(was_training)


def precomputed_reference(
    model: ModelConfig,
    reference_path: str | None,
    scorer: SequenceScorer,
    make_batch: Callable[[Any], Batch],
    options: LogpsOptions,
    datasets: dict[str, Any],
    *,
    batch_size: int,
    precision: str,
    accelerator=None,
) -> CachedReference:
    """Reference log-probs of every example of `datasets` (split name -> dataset or None), from the cache or
    from one pass of the reference (`reference_path`, else the starting policy of `model`), which is then written
    to the cache. `make_batch` builds the run's batches from examples; of `options` only ld_alpha applies (WPO
    weights come from the policy). Call it before training: under full fine-tuning and LoRA the reference is the
    starting policy."""
    from accelerate.utils import gather_object

    device = accelerator.device if accelerator else next(scorer.parameters()).device
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    options = LogpsOptions(ld_alpha=options.ld_alpha)

    def path_for(split: str) -> Path | None:
        fingerprint = reference_fingerprint(model, reference_path)
        if fingerprint is None:
            return None
        return cache_path(cache_key(fingerprint, data[split], options, precision, torch.device(device).type))

    data = {split: data_fingerprint(dataset) for split, dataset in datasets.items() if dataset is not None}
    tables, paths, missing, shares = {}, {}, {}, {}
    for split in data:
        path = path_for(split)
        if path is not None and path.is_file():
            paths[split] = path
            tables[split] = _read(path)
            log.info("reference log-probs of %s read from %s", split, path)
        else:
            missing[split] = datasets[split]
    if missing:
        autocast = accelerator.autocast() if accelerator else nullcontext()
        with _reference_for_pass(model, reference_path, scorer, options, device) as reference, autocast:
            for split, dataset in missing.items():
                batches = shard_batches(dataset, make_batch, batch_size, device, rank=rank, world=world)
                # Each process scores every world-th example; rank 0 writes the assembled table, the others wait.
                own = score_batches(reference, batches)
                gathered = gather_object([own]) if world > 1 else [own]
                shares[split] = [len(indices) for indices, _, _ in gathered]
                tables[split] = _assemble(gathered, len(dataset))
                log.info("reference log-probs of %s computed: %d examples (%s)", split, len(dataset), reference.mode)
                # After loading, a hub reference is in the local cache and can be fingerprinted.
                path = path_for(split)
                if path is not None:
                    paths[split] = path
                    if rank == 0:
                        _write(path, *tables[split], {"split": split, "data": data[split]})
        if accelerator:
            accelerator.wait_for_everyone()
    return CachedReference(tables, paths, tuple(missing), shares)
