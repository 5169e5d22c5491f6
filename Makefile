# Each target installs what it needs into the current Python (idempotent), then runs.
PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install browser test demo lint

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) -r requirements.txt
	$(PYTHON) -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation -e .

# Debian's Chromium for the real-browser test (Playwright drives it; no browser download). Where it
# cannot be installed (no root, no Debian registry) the browser test skips with that reason.
browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) || \
	  echo "note: Debian's chromium is not installed; tests/test_browser.py will skip"

test: install browser
	$(PYTHON) -m pytest

demo: install
	$(PYTHON) app.py

lint:
	$(PYTHON) -m ruff check ilrm demo eval tests benchmarks
