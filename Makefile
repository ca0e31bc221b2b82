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

# Every benchmark runs, whatever the one before it found; the target fails after them
# when any printed a FAIL.
bench: $(VENV)/.installed-test
	sh scripts/install-bench-tools.sh
	status=0; \
	for bench in web login_flood feeds dispatch; do \
		$(PY) bench/$$bench.py || status=1; \
	done; \
	exit $$status

clean:
	rm -rf $(VENV) var
