# The two set-up commands: `make demo` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEBS   := unbound dnsutils postfix jq iproute2 nsd

.PHONY: demo test test-fast lint typecheck docs debs bench clean conformance

$(BIN)/mxdoctor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

demo: $(BIN)/mxdoctor
	$(BIN)/mxdoctor demo

# Debian packages the tests start (Unbound, Postfix, dig); installed only when missing and root.
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: tests needing$$missing will skip"; fi; \
	fi

test: $(BIN)/mxdoctor debs
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: $(BIN)/mxdoctor
	$(BIN)/pytest -m "not slow and not conformance"

lint: $(BIN)/mxdoctor
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

docs: $(BIN)/mxdoctor
	$(BIN)/mxdoctor checks --markdown > docs/checks.md
	$(BIN)/mxdoctor models --markdown > docs/mta-behaviour.md

# Real Postfix, Exim, OpenSMTPD and Sendmail against the lab scenarios (root); rewrites docs/conformance.md.
conformance: $(BIN)/mxdoctor debs
	$(BIN)/python tests/conformance/conformance_harness.py --write-docs

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
