# KeyLM: the only commands a newcomer needs. Each one installs whatever is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements*.txt | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
VENDOR_STAMP := gateway/static/vendor/.installed-$(shell cat web/package.json web/package-lock.json web/copy-vendor.js | sha1sum | cut -c1-12)

.PHONY: setup vendor run test test-fast lint format migrate bench rotate-key rotate-service-keys simulator system-deps openapi clean

setup: $(STAMP)

$(STAMP): $(wildcard requirements*.txt)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

# The web client's libraries (marked, DOMPurify, highlight.js) and Swagger UI (the /api/docs page)
# from the npm registry.
vendor: $(VENDOR_STAMP)

$(VENDOR_STAMP): web/package.json web/package-lock.json web/copy-vendor.js
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@npm ci --prefix web --no-audit --no-fund --loglevel=error
	@node web/copy-vendor.js
	@touch $@

# Debian packages the tests drive, as command:package: Chromium for the browser suite, HAProxy for
# the replica suite (tests/replicas), kubectl to render the Kubernetes manifests (tests/deploy),
# nginx for the edge (tests/e2e/test_edge_proxy.py) and Compose to validate docker-compose.yml.
# Without recommends: docker-compose would bring the whole Docker engine. (nginx and haproxy live
# in /usr/sbin.)
SYSTEM_PACKAGES := chromium:chromium haproxy:haproxy kubectl:kubectl nginx:nginx-light \
	docker-compose:docker-compose
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		PATH="$$PATH:/usr/sbin" command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

run: setup vendor
	@$(PY) -m runner run

migrate: setup
	@$(PY) -m runner migrate

test: setup system-deps vendor
	@$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup vendor
	@$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: setup
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

# The OpenAPI document the gateway serves, from each service's openapi.py (commit the result).
openapi: setup
	@$(PY) -m runner openapi

rotate-key: setup
	@$(PY) -m runner rotate-key

# New Ed25519 keys for every service; the previous public keys stay accepted (overlap) until the next.
rotate-service-keys: setup
	@$(PY) -m runner rotate-service-keys

bench: setup
	@$(PY) -m bench

simulator: setup
	@$(PY) -m simulator --port $${SIMULATOR_PORT:-8099}

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .ruff_cache web/node_modules gateway/static/vendor
