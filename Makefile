# The two commands of the README. Each sets up (or refreshes) everything it needs first.
PY := .venv/bin/python

.PHONY: setup validate test lint

setup:
	bash scripts/setup.sh

## Main job: local validation of the default ensemble on demo data it renders itself.
validate: setup
	$(PY) test.py

## The test suite (style check first, then pytest).
test: setup lint
	$(PY) -m pytest -q

lint:
	.venv/bin/ruff check .
