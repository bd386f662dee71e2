# The two commands of the README: `make run` and `make test`.
# Each sets up what it needs (a .venv with the pinned requirements) and then runs.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: run test setup system-deps lint check-profiles clean-venv

# `auth check` stops here, with what to do, when the profile would serve without sign-in
# on a network address (HOST other than loopback and auth.mode: none).
run: setup
	$(PY) cli.py auth check --address "$(HOST)"
	$(PY) serve.py --server.headless true --server.address $(HOST) \
	  --server.port $(PORT) --browser.gatherUsageStats false $(STREAMLIT_ARGS)

test: setup system-deps
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	OMP_THREAD_LIMIT=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip check
	touch $(STAMP)

# Tesseract and Chromium come from the system's package manager; the script
# installs them when it can (root + apt) and otherwise says what is missing.
system-deps:
	bash scripts/install_system_deps.sh

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m ruff format --check .

check-profiles: setup
	for f in config.yaml config_optimized.yaml config_blackwell_optimized.yaml config_docker.yaml \
	  deploy/keycloak/config_docker_keycloak.yaml; do \
	  $(PY) cli.py config check $$f > /dev/null || exit 1; done

clean-venv:
	rm -rf $(VENV)
