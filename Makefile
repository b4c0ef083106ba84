# The two commands of the README: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Wheels of everything the two distributions need, for the install test, which installs them
# into a fresh venv offline (--no-index --find-links); filled here, where PyPI is reachable.
WHEELHOUSE := .wheelhouse
WHEELS := $(WHEELHOUSE)/.filled

# Python caches bytecode (__pycache__, git-ignored) even where the environment says not to
# (PYTHONDONTWRITEBYTECODE, set on this machine): else each process the suites start, a worker
# or a CLI run, compiles cloudq again; a third of `make check`'s CPU. Empty means unset.
export PYTHONDONTWRITEBYTECODE :=
# mkdocs-material's banner about its successor, printed on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test docs docs-strict check check-unit check-conformance chaos lean schedules celery-move flow bench lint typecheck clean infra workflows stepfunctions

$(STAMP): pyproject.toml emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,redis,amqp,dashboard,dev,docs]' -e ./emulator
	touch $(STAMP)

$(WHEELS): pyproject.toml emulator/pyproject.toml | $(STAMP)
	$(BIN)/python -m pip wheel --quiet -w $(WHEELHOUSE) '.[cli]' ./emulator 'setuptools>=68'
	rm -f $(WHEELHOUSE)/cloudq_aws-*.whl $(WHEELHOUSE)/cloudq_aws_emulator-*.whl
	# pydantic for Lambda's platform, which `cloudq infra package` installs in the e2e test (offline)
	$(BIN)/python -m pip download --quiet -d $(WHEELHOUSE) --only-binary=:all: \
	  --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp \
	  "pydantic==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("pydantic"))')"
	touch $(WHEELS)

demo: $(STAMP)
	$(BIN)/cloudq demo

# The suite, after the lint and type checks the README promises (they run here, not only by hand)
# and the strict docs build.
# tests/ runs on 2 processes (pytest-xdist): most e2e time is waiting on workers and the
# emulator, so two share the 2 cores; each module stays on one process (--dist loadfile). The
# Django example runs after, alone: it sets Django up for its whole process, and the modules a
# process ran after it would start their workers with its DJANGO_SETTINGS_MODULE.
test: $(STAMP) $(WHEELS) lint typecheck docs-strict
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests
	$(BIN)/python -m pytest -q examples/django_events
	$(SHIFTED) $(BIN)/python -m pytest -q -n 2 tests/unit

# make test runs the unit tests a second time on a clock 400 days ahead (Debian's libfaketime),
# so that a test depending on today's date fails the day it is written, not a year later.
# Monotonic time stays real (thread waits use it); tests/shifted_clock/sitecustomize.py works
# around libfaketime 0.9.10's time.sleep. The set-up installs faketime (CI runs as root).
SHIFTED := FAKETIME_DONT_FAKE_MONOTONIC=1 PYTHONPATH=tests/shifted_clock faketime -f '+400d'
FAKETIME := /usr/bin/faketime
test: | $(FAKETIME)
$(FAKETIME):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime \
	  || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime)

# The dashboard's browser test drives Debian's headless Chromium through its chromedriver
# (offline: no browser download); the set-up installs both when missing, as for faketime.
CHROMEDRIVER := /usr/bin/chromedriver
test: | $(CHROMEDRIVER)
$(CHROMEDRIVER):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
	  || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

# The fast tier: unit tests and the in-process engines' conformance (memory, moto), no servers,
# in under 60 s on 2 cores. The two runs go side by side: the conformance run mostly waits on
# moto's real visibility timeouts (about 12 s of its 30), which leaves a core to the unit run.
check: $(STAMP)
	$(MAKE) --no-print-directory -j2 --output-sync=target check-unit check-conformance
check-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit
check-conformance: $(STAMP)
	$(BIN)/python -m pytest -q tests/conformance -k "memory or moto"

# Moving from Celery queue by queue at the issue's scale, 200 tasks a queue (make test: 40).
celery-move: $(STAMP)
	CLOUDQ_CELERY_MOVE=full $(BIN)/python -m pytest tests/e2e/test_celery_move_e2e.py -q

# The chaos suite at the issue's full scale (make test runs it short).
chaos: $(STAMP)
	CLOUDQ_CHAOS=full $(BIN)/python -m pytest tests/chaos -q -s

# The whole conformance suite on the lean path (make test leaves out its sleeping tests there).
lean: $(STAMP)
	CLOUDQ_LEAN=full $(BIN)/python -m pytest -q tests/conformance tests/unit/test_lean_sigv4.py tests/unit/test_lean_http.py -k "lean or sigv4"

# Run-time schedules on ministack in full: a rate(1 minute) schedule fires, and deleted, no more.
schedules: $(STAMP)
	CLOUDQ_SCHEDULES=full $(BIN)/python -m pytest tests/e2e/test_runtime_schedules_e2e.py -q -s

# The flow-control scenarios at the issue's full scale (make test runs them short).
flow: $(STAMP)
	CLOUDQ_FLOW=full $(BIN)/python -m pytest tests/e2e/test_flow_e2e.py -q -s

# The benchmarks' own extra (the peers, awscrt), installed on first use; make test needs none of it.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_cold.py
	$(BIN)/python bench/bench_redis.py
	$(BIN)/python bench/bench_amqp.py
	$(BIN)/python bench/bench_heartbeat.py
	$(BIN)/python bench/bench_lambda.py
	$(BIN)/python bench/bench_stop.py
	$(BIN)/python bench/bench_django.py
	$(BIN)/python bench/bench_payloads.py
	$(BIN)/python bench/bench_workflows.py
	$(BIN)/python bench/bench_status.py
	$(BIN)/python bench/bench_dashboard.py

# The workflow e2e tests at full scale (groups and chords of 1,000; make test runs 100).
workflows: $(STAMP)
	CLOUDQ_WORKFLOWS=full $(BIN)/python -m pytest tests/e2e/test_workflows_e2e.py -q

# The Step Functions e2e test with its Lambda task at 6 s under HeartbeatSeconds=2 (make test: 3 s).
stepfunctions: $(STAMP)
	CLOUDQ_STEPFUNCTIONS=full $(BIN)/python -m pytest tests/e2e/test_stepfunctions_e2e.py -q

# The example app's deployment files (infra/, serverless.yml), rendered from its task registry;
# tests/deploy/test_committed_templates.py fails when they differ from a fresh render. CLOUDQ_*
# variables of this shell must not leak into them: env -i.
EXAMPLE_APP := examples.shop.tasks:app
RENDER := env -i PATH="$$PATH" $(BIN)/cloudq infra render --app $(EXAMPLE_APP)
infra: $(STAMP)
	$(RENDER) --format cloudformation -o infra/cloudformation.yml
	$(RENDER) --format iam -o infra/iam.json
	$(RENDER) --format serverless -o serverless.yml

# The docs site (mkdocs.yml, docs/) into site/, offline. The strict build fails on a broken link
# or anchor, a page left out of the nav, or an API reference that does not resolve.
docs: $(STAMP)
	$(BIN)/mkdocs build
docs-strict: $(STAMP)
	$(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(WHEELHOUSE) site
