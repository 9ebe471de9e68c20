# `make test` builds everything the tests need (Debian packages, a virtualenv) and runs them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEBIAN_PACKAGES := redis-server rabbitmq-server iproute2 iptables prometheus chromium
# `make e2e` only: podman (runc, no registry: the base image comes from debootstrap).
E2E_DEBIAN_PACKAGES := podman buildah runc catatonit uidmap fuse-overlayfs slirp4netns \
	debootstrap debian-archive-keyring

.PHONY: test test-fast test-faults test-clusters system-deps bench-deps e2e-deps e2e venv lint bench bench-accuracy clean bench-queries

test: venv
	$(PY) -m pytest tests

# Unit tests only: no servers.
test-fast: venv
	$(PY) -m pytest tests/unit

test-faults: venv
	$(PY) -m pytest -m faults tests

# Broker node loss and Redis master loss, on real local clusters.
test-clusters: venv
	$(PY) -m pytest -m clusters tests

# $(call install-debs,PACKAGES): apt-get install those not installed yet.
define install-debs
	@missing=""; for pkg in $(1); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
	    --no-install-recommends $$missing; \
	fi
endef

system-deps:
	$(call install-debs,$(DEBIAN_PACKAGES))

e2e-deps:
	$(call install-debs,$(E2E_DEBIAN_PACKAGES))

# Build the three images, run the stack from k8s/ under podman and drive it from outside
# (scripts/e2e/; about 21 minutes cold, 3 minutes with the build cache). Needs root.
e2e: venv e2e-deps
	CONTAINERS_CONF=$(CURDIR)/scripts/e2e/containers.conf $(PY) scripts/e2e/stack.py

venv: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip<27"
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps face_recognition==1.3.0
	# Only for its PP-OCRv4 mobile text detector (4x faster than rapidocr 3's); its code is
	# never imported, and its dependency on opencv-python would clash with the headless one.
	$(PIP) install -q --no-deps rapidocr_onnxruntime==1.4.4
	$(PIP) install -q --no-deps -e .
	touch $@

lint: venv
	$(VENV)/bin/ruff check imagescan rest worker logs facetier tests bench scripts

# wrk is the load generator of the throughput bench (not needed by the tests).
bench-deps:
	$(call install-debs,wrk)

# One table, each figure next to its reference from the same run (README "Throughput").
# Full size: make bench BENCH_ARGS="--images 1000000 --photos 20 --seconds 20"
bench: venv bench-deps
	$(PY) bench/throughput.py $(BENCH_ARGS)

# The query rows alone at 10^6 stored images (a few minutes on an idle 2-core machine;
# Redis needs about 3 GB of memory). BENCH_IMAGES=100000 for a quicker look.
BENCH_IMAGES ?= 1000000
bench-queries: venv bench-deps
	$(PY) bench/throughput.py --only queries --images $(BENCH_IMAGES) $(BENCH_ARGS)

bench-accuracy: venv
	$(PY) bench/plates.py
	$(PY) bench/faces.py

clean:
	rm -rf $(VENV) .pytest_cache
