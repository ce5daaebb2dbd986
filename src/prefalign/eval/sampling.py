"""Seeded sampling for the answers `prefalign eval` gives (greedy when none is asked for)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch

from prefalign.config import ConfigError


@dataclass(frozen=True)
class Sampling:
    """Sample answers at `temperature` from the smallest token set holding `top_p` of the probability, with the
    random generator seeded by `seed` before every prompt: an answer depends only on the seed, the model and the
    prompt (not on which prompts came before it, nor on --n), and base and aligned draw the same random numbers."""

    seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(
                f"--temperature: {self.temperature} must be above 0 (for greedy answers leave out --sample)"
            )
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p: {self.top_p} must be in (0, 1]")

    def generate_options(self) -> dict:
        # top_k=0: transformers would otherwise add its default top-k of 50, a cut the user did not ask for.
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}

    @contextlib.contextmanager
    def seeded(self, device: torch.device) -> Iterator[None]:
        """Seed the generator for one answer; the caller's random state is restored afterwards."""
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            yield

    def as_dict(self) -> dict:
        return {"mode": "sampled", **asdict(self)}


def sampling_from_options(
    sample: bool, *, seed: int | None = None, temperature: float | None = None, top_p: float | None = None
) -> Sampling | None:
    """The CLI's --sample, --seed, --temperature, --top-p; a sampling option without --sample is an error rather
    than silently greedy answers."""
    given = {"--seed": seed, "--temperature": temperature, "--top-p": top_p}
    if not sample:
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise ConfigError(f"{', '.join(named)} set how answers are sampled: add --sample (answers are greedy)")
        return None
    settings = {"seed": seed, "temperature": temperature, "top_p": top_p}
    return Sampling(**{key: value for key, value in settings.items() if value is not None})
