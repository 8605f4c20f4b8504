# cityledger: `make up` installs everything into .venv and starts a city node;
# `make test` installs and runs the whole test suite. Both are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test install clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==24.3.1
	$(PY) -m pip install --quiet -e '.[test]'
	bash scripts/install_cometbft.sh
	bash scripts/gen_proto.sh $(PY)
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/cityledger up

test: install
	$(PY) -m pytest -q

bench: install
	$(VENV)/bin/cityledger bench --json

clean:
	rm -rf $(VENV) build src/*.egg-info
