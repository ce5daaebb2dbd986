"""Names that config and data both need: the error a bad config raises, the data layouts and chat templates.

A leaf (it imports nothing of prefalign): config.py checks `data.layout` and `data.template` against these
without importing the data package, which imports config. data/layout.py and data/templates.py build one
layout or template per name (tests/test_layers.py checks they agree).
"""


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key."""


LAYOUT_NAMES = ("auto", "padded", "packed", "prefix_shared", "prefix_shared_packed")  # what data.layout accepts

BUILTIN_TEMPLATES = ("chatml", "llama3", "mistral", "gemma", "qwen", "zephyr")
# Every value `data.template` accepts, besides null (the tokenizer's template for message lists).
TEMPLATE_NAMES = ("tokenizer", "none", *BUILTIN_TEMPLATES)
