# The README's two commands: `make demo` and `make test` each set up .venv on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint bench-losses ablate sweep clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	for c in fit validate test predict; do $(BIN)/focal-pl $$c --help >/dev/null; done  # help cache
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/focal-pl fit --config demo.yaml

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

# make ablate SET=losses [ARGS="--only nce scl_soft_image --trainer.max_steps 400"]
ablate: setup
	$(BIN)/focal-pl ablate $(or $(SET),losses) $(ARGS)

# make sweep FILE=temperature [ARGS="--count 4"]
sweep: setup
	$(BIN)/focal-pl sweep $(or $(FILE),temperature) $(ARGS)

bench-losses: setup
	$(BIN)/python benchmarks/loss_learning.py

clean:
	rm -rf runs lightning_logs .pytest_cache
