# `make test` builds everything the tests need (Debian packages, a virtualenv) and runs them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEBIAN_PACKAGES := redis-server rabbitmq-server iproute2 iptables prometheus

.PHONY: test test-fast test-faults test-clusters system-deps venv lint bench clean

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

system-deps:
	@missing=""; for pkg in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends $$missing; \
	fi

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
	$(VENV)/bin/ruff check imagescan rest worker logs tests bench

bench: venv
	$(PY) bench/plates.py
	$(PY) bench/faces.py

clean:
	rm -rf $(VENV) .pytest_cache
