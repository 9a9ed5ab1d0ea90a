# The README's two commands: `make demo` and `make test` each set up .venv on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test test-quick lint bench-losses ablate sweep clean gpu-pack gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/focal-pl --help >/dev/null; for c in fit validate test predict; do $(BIN)/focal-pl $$c --help >/dev/null; done  # help cache
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/focal-pl fit --config demo.yaml

# the unit and the integration tests (commands, DDP, kills, full disks) in one session of two worker
# processes, a test file each at a time: the unit files fill the cores while an integration test
# waits on its subprocesses (616 s one part after the other, 523 s together); the time is printed
test: setup
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests/unit tests/integration || exit $$?; \
	echo "make test: $$(( $$(date +%s) - start )) s (unit and integration tests, two workers)"

# the quick loop: the unit tests not marked slow
test-quick: setup
	@start=$$(date +%s); $(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow" tests/unit || exit $$?; \
	echo "make test-quick: $$(( $$(date +%s) - start )) s"

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

# Here, with a registry: wheels a bare GPU machine lacks (.whl/) and real images (.gpucheck/).
gpu-pack: setup
	$(BIN)/python .ci/gpu_check.py --pack

# On a GPU machine (device tool: carry .whl and .gpucheck): fit vit/hrnet, validate/test/predict on
# real images, the gpu tests, the speed benchmarks; figures to benchmarks/results/gpu_check.md.
# Uses the machine's own python3 and torch: no venv is made there.
gpu-check:
	$(PYTHON) .ci/gpu_check.py $(ARGS)

clean:
	rm -rf runs lightning_logs .pytest_cache
