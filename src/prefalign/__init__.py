"""prefalign: align language models with human preferences (DPO and its family) from one YAML file."""

from prefalign.config import ConfigError, RunConfig, load_config

__version__ = "0.1.0"
__all__ = ["ConfigError", "RunConfig", "RunResult", "load_config", "train"]


def train(config, overrides=(), *, quiet: bool = False):
    """Run training from a RunConfig, a dict or a YAML path; returns a RunResult (see prefalign.run)."""
    from prefalign.run import train as _train

    return _train(config, overrides, quiet=quiet)


def __getattr__(name: str):
    if name == "RunResult":
        from prefalign.run import RunResult

        return RunResult
    raise AttributeError(name)
