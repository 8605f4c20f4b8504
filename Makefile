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
	$(PY) -m pip install --quiet -e '.[test,sim]'
	touch $(STAMP)

# The scripts are idempotent and cheap when nothing changed, so they run every time:
# a deleted .tools/ or stale stubs are rebuilt even when .venv is up to date.
install: $(STAMP)
	bash scripts/install_cometbft.sh
	bash scripts/install_mosquitto.sh
	bash scripts/install_seaweedfs.sh
	bash scripts/install_chromium.sh
	bash scripts/gen_proto.sh $(PY)

up: install
	$(VENV)/bin/cityledger up

# Two workers, one per core of the project's machines; a test file stays on one worker (loadfile),
# so a file's fixtures and processes are never shared across workers.
test: install
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: install
	$(VENV)/bin/cityledger bench --json

clean:
	rm -rf $(VENV) build src/*.egg-info
