# The two commands of the README: `make run` and `make test`. Both set up what is missing first.
.PHONY: setup run test lint unit e2e down

setup:
	@scripts/setup.sh

# A local control plane (left running), tidal installed into it, the controller in the foreground.
run: setup
	@scripts/run.sh

down:
	.venv/bin/python -m testenv down

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# The whole suite: lint, types, unit, corpus and e2e tests (the e2e tests start their own plane).
test: lint
	.venv/bin/python -m pytest

unit: setup
	.venv/bin/python -m pytest -m "not e2e"

# A first run: a local plane, Git serving examples/demo/, tidal bootstrapped from it and in sync.
.PHONY: demo
demo: setup
	@scripts/demo.sh
