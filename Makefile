# Each target installs what it needs into the current Python (idempotent), then runs.
PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install test demo lint

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) -r requirements.txt
	$(PYTHON) -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation -e .

test: install
	$(PYTHON) -m pytest

demo: install
	$(PYTHON) app.py

lint:
	$(PYTHON) -m ruff check ilrm demo eval tests benchmarks
