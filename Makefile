# `make install` then `make train`; `make test` runs the test suite. `make help` lists everything.
PYTHON ?= python3
TORCH ?= torch>=2.4
EXP ?= m30k_deen_ref
ARGS ?=

.PHONY: help install train smoke test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

install:  ## install nmt (editable) with its test tools; TORCH="torch==X" picks a torch build
	$(PYTHON) -m pip install "$(TORCH)"
	$(PYTHON) -m pip install -e ".[dev]"

train:  ## train experiment EXP (default m30k_deen_ref; fetches Multi30k when missing); ARGS="key=value ..."
	nmt-train experiment=$(EXP) $(ARGS)

smoke:  ## train the tiny smoke experiment on CPU (about a minute)
	nmt-train experiment=smoke $(ARGS)

test:  ## run the test suite
	$(PYTHON) -m pytest -q $(ARGS)

lint:  ## check style with ruff
	$(PYTHON) -m ruff check nmt tests scripts

bench:  ## speed benchmark (scripts/benchmark.py); ARGS="--steps 50 ..."
	$(PYTHON) scripts/benchmark.py $(ARGS)

clean:  ## remove caches (not data, not runs)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
