# The two commands of the README: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test chaos bench lint typecheck clean infra

$(STAMP): pyproject.toml emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,redis,dev]' -e ./emulator
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cloudq demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The chaos suite at the issue's full scale (make test runs it short).
chaos: $(STAMP)
	CLOUDQ_CHAOS=full $(BIN)/python -m pytest tests/chaos -q -s

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/bench_redis.py
	$(BIN)/python bench/bench_heartbeat.py
	$(BIN)/python bench/bench_lambda.py

# The example app's deployment files (infra/, serverless.yml), rendered from its task registry;
# tests/deploy/test_committed_templates.py fails when they differ from a fresh render. CLOUDQ_*
# variables of this shell must not leak into them: env -i.
EXAMPLE_APP := examples.shop.tasks:app
RENDER := env -i PATH="$$PATH" $(BIN)/cloudq infra render --app $(EXAMPLE_APP)
infra: $(STAMP)
	$(RENDER) --format cloudformation -o infra/cloudformation.yml
	$(RENDER) --format iam -o infra/iam.json
	$(RENDER) --format serverless -o serverless.yml

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV)
