# Two commands on a fresh machine with only python3:
#   make run    install everything into .venv and start the whole system on port 8000
#   make test   install what the tests need (Chromium included) and run them
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test lint bench clean

$(VENV)/.installed-run: pyproject.toml
	sh scripts/make-venv.sh $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	sh scripts/make-venv.sh $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	touch $(VENV)/.installed-run $@

run: $(VENV)/.installed-run
	sh scripts/install-editor.sh
	$(VENV)/bin/kgi run

test: $(VENV)/.installed-test
	sh scripts/install-editor.sh
	sh scripts/install-browser.sh $(VENV)
	sh scripts/install-test-tools.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	sh scripts/run-tests.sh $(VENV)

bench: $(VENV)/.installed-test
	sh scripts/install-bench-tools.sh
	$(PY) bench/web.py
	$(PY) bench/login_flood.py
	$(PY) bench/feeds.py
	$(PY) bench/dispatch.py

clean:
	rm -rf $(VENV) var
