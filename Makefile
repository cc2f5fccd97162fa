# The two set-up commands: `make demo` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEBS   := unbound dnsutils postfix jq iproute2 time chromium chromium-driver \
          nsd knot bind9 bind9-utils pdns-server pdns-backend-bind dnsdist knot-resolver pdns-recursor dnsmasq \
          libgraphviz-dev
# Services those packages start on the host: the realdns suite starts its own daemons in a namespace.
REALDNS_SERVICES := nsd knot named pdns dnsdist kresd@1 kres-cache-gc pdns-recursor dnsmasq

.PHONY: demo test test-fast lint typecheck docs debs bench clean conformance fuzz realdns

$(BIN)/mxdoctor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

demo: $(BIN)/mxdoctor
	$(BIN)/mxdoctor demo

# Debian packages the tests start (Unbound, Postfix, dig, the realdns servers); installed only when missing
# and root.
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    for s in $(REALDNS_SERVICES); do \
	      if [ -d /run/systemd/system ]; then systemctl disable --now $$s >/dev/null 2>&1 || true; \
	      else service $$s stop >/dev/null 2>&1 || true; fi; \
	    done; \
	  else echo "not root: tests needing$$missing will skip"; fi; \
	fi

# DNSViz for tests/dnssec/test_dnsviz.py; its pygraphviz builds against libgraphviz-dev, so after debs.
$(BIN)/dnsviz: pyproject.toml | $(BIN)/mxdoctor debs
	@$(BIN)/pip install -q -e '.[dnsviz]' && touch $@ || echo "no dnsviz extra: tests/dnssec/test_dnsviz.py will skip"

test: $(BIN)/mxdoctor debs $(BIN)/dnsviz
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

test-fast: $(BIN)/mxdoctor
	$(BIN)/pytest -m "not slow and not conformance and not realdns"

# The property tests (test_fuzz_*) at length: FUZZ_EXAMPLES inputs per property, a fresh random seed each
# run (repeat one with MXDOCTOR_FUZZ_SEED=N); `make test` runs them on a small fixed budget.
FUZZ_EXAMPLES ?= 1000
fuzz: $(BIN)/mxdoctor
	MXDOCTOR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider -k fuzz tests

lint: $(BIN)/mxdoctor
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

docs: $(BIN)/mxdoctor
	$(BIN)/mxdoctor checks --markdown > docs/checks.md
	$(BIN)/mxdoctor models --markdown > docs/mta-behaviour.md
	$(BIN)/python -m mxdoctor.lab.faults docs/lab.md

# The fuzz suites (-m fuzz) at length and at random: FUZZ_EXAMPLES per test, FUZZ_SEED=N replays a run.
# `make test` runs the same tests with a small fixed budget.
FUZZ_EXAMPLES ?= 5000
fuzz: $(BIN)/mxdoctor
	@seed=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "fuzz seed $$seed (FUZZ_SEED=$$seed replays it)"; \
	MXDOCTOR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) MXDOCTOR_FUZZ_SEED=$$seed \
	  $(BIN)/pytest -m fuzz -q -o timeout=7200 -p no:cacheprovider

# Real Postfix, Exim, OpenSMTPD and Sendmail against the lab scenarios (root); rewrites docs/conformance.md.
conformance: $(BIN)/mxdoctor debs
	$(BIN)/python tests/conformance/conformance_harness.py --write-docs

# Real DNS servers and resolvers (Knot, NSD, BIND, PowerDNS, dnsdist, Unbound, Knot Resolver, PowerDNS
# Recursor, dnsmasq) against mxdoctor in a namespace (root); rewrites docs/realdns.md.
realdns: $(BIN)/mxdoctor debs
	$(BIN)/python tests/realdns/realdns_harness.py --write-docs

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
