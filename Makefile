# Two entry points, both self-installing on a fresh machine (see README):
#   make run    start trigger-router with embedded NATS and examples/config.yaml
#   make test   run the whole test suite (builds the local Kubernetes control plane once, cached)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench venv clean registry-tools browser-tools observability-tools

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,fast]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/trigger-router --config examples/config.yaml serve

# The registry tests push with skopeo to a real distribution registry (htpasswd makes its users);
# the image tests build the image without an engine (mmdebstrap) and the Dockerfile with buildah.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
registry-tools:
	@command -v skopeo >/dev/null && command -v htpasswd >/dev/null && test -x /usr/bin/docker-registry && \
	  command -v mmdebstrap >/dev/null && command -v buildah >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    skopeo docker-registry apache2-utils mmdebstrap buildah; }

# The web view is tested in a real headless Chromium (tests/integration/test_web_view.py, Selenium).
browser-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    chromium chromium-driver; }

# /metrics is scraped by a real Prometheus in tests/integration/test_metrics.py.
observability-tools:
	@command -v prometheus >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends prometheus; }

test: $(STAMP) registry-tools browser-tools observability-tools
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python bench/ingest.py

clean:
	rm -rf $(VENV) *.egg-info

# The container image, built without a container engine (deploy/image/build.py, README "Container
# image"): mmdebstrap makes the root, the layout is cached; PUSH=HOST/NAME also copies it there.
.PHONY: image
image: $(STAMP) registry-tools
	@command -v mmdebstrap >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mmdebstrap; }
	$(VENV)/bin/python deploy/image/build.py $(if $(PUSH),--push $(PUSH))
