# SPDX-License-Identifier: Apache-2.0
# EdgeCoder: `make run` starts a node, `make test` runs the tests. Both set everything up.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= embedded,ble,anchor,dev
STAMP := $(VENV)/.installed
SOURCES := pyproject.toml setup.py $(wildcard _speedups/*.pyx _speedups/*.pxd)
# Debian packages the build needs: libsodium for the compiled core, cmake for llama.cpp.
DEB_PACKAGES := build-essential cmake libsodium-dev faketime
PYTEST_ARGS ?=
ARGS ?=
LINT_PATHS := edgecoder tests setup.py

.PHONY: all install deb-deps run test test-pure lint units install-units bench clients clean \
	install-appliance-units image-deps image-deps-rpi image-x86 image-rpi image-test \
	image-test-rpi image-repro image-repro-rpi

all: install

install: $(STAMP)

$(STAMP): $(SOURCES)
	@$(MAKE) --no-print-directory deb-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet --editable ".[$(EXTRAS)]"
	@$(BIN)/edgecoder version
	@touch $@

deb-deps:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "Missing Debian packages:$$missing (sudo apt-get install$$missing); the build may fall back to pure Python"; \
	fi

run: $(STAMP)
	$(BIN)/edgecoder agent $(ARGS)

# The npm clients the client-API tests drive (tests/clients/node), as the lock pins them.
NODE_CLIENTS := tests/clients/node
NODE_STAMP := $(NODE_CLIENTS)/node_modules/.package-lock.json

$(NODE_STAMP): $(NODE_CLIENTS)/package-lock.json
	cd $(NODE_CLIENTS) && npm ci --no-audit --no-fund
	@touch $@

# The PyPI clients those tests drive, each in its own environment (their pins differ).
CLIENT_VENVS := .venv-clients/.installed .venv-aider/.installed

.venv-clients/.installed: tests/clients/pypi/requirements-clients.txt
.venv-aider/.installed: tests/clients/pypi/requirements-aider.txt
$(CLIENT_VENVS):
	@test -x $(@D)/bin/python || $(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet -r $<
	@touch $@

clients: $(NODE_STAMP) $(CLIENT_VENVS)

test: $(STAMP) $(NODE_STAMP) $(CLIENT_VENVS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-pure: $(STAMP) $(NODE_STAMP) $(CLIENT_VENVS)
	EDGECODER_NO_EXTENSIONS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

# The systemd unit, sysusers, tmpfiles, D-Bus policy and preset: hardening score, verify,
# and what the agent needs (tests/unit/test_systemd_units.py).
units: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit/test_systemd_units.py

# Install the appliance's system files under $(DESTDIR) (the image build uses this).
install-units:
	install -D -m 0644 systemd/edgecoder.service $(DESTDIR)/usr/lib/systemd/system/edgecoder.service
	install -D -m 0644 systemd/edgecoder.sysusers $(DESTDIR)/usr/lib/sysusers.d/edgecoder.conf
	install -D -m 0644 systemd/edgecoder.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/edgecoder.conf
	install -D -m 0644 systemd/org.edgecoder.Agent.conf $(DESTDIR)/usr/share/dbus-1/system.d/org.edgecoder.Agent.conf
	install -D -m 0644 systemd/90-edgecoder.preset $(DESTDIR)/usr/lib/systemd/system-preset/90-edgecoder.preset

# What only the appliance image has: first boot, the setup code and its claim (docs/image.md).
install-appliance-units:
	install -D -m 0644 systemd/edgecoder-firstboot.service $(DESTDIR)/usr/lib/systemd/system/edgecoder-firstboot.service
	install -D -m 0644 systemd/edgecoder-setup.service $(DESTDIR)/usr/lib/systemd/system/edgecoder-setup.service
	install -D -m 0644 systemd/edgecoder-setup.path $(DESTDIR)/usr/lib/systemd/system/edgecoder-setup.path
	install -D -m 0644 systemd/edgecoder-appliance.conf $(DESTDIR)/usr/lib/systemd/system/edgecoder.service.d/50-appliance.conf
	install -D -m 0644 systemd/edgecoder-appliance.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/edgecoder-appliance.conf

# The appliance image (docs/image.md). Building needs root; nothing is mounted.
IMAGE_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' edgecoder/__init__.py)
IMAGE_X86 := build/edgecoder-$(IMAGE_VERSION)-x86_64.img.zst
IMAGE_RPI := build/edgecoder-$(IMAGE_VERSION)-rpi-arm64.img.zst
IMAGE_DEB_PACKAGES := mmdebstrap mtools dosfstools fdisk e2fsprogs zstd faketime cpio unzip \
	binutils qemu-system-x86 qemu-utils ovmf dnsmasq-base
# The Pi image: arm64 package scripts run under qemu-user; the wheels are cross-compiled
# against Debian's arm64 Python and libsodium; qemu-system-arm boots it for the test.
IMAGE_RPI_DEB_PACKAGES := qemu-user-static binfmt-support arch-test qemu-system-arm \
	crossbuild-essential-arm64 libpython3.11-dev:arm64 libsodium-dev:arm64

image-deps:
	@$(MAKE) --no-print-directory deb-deps DEB_PACKAGES="$(IMAGE_DEB_PACKAGES)"

image-deps-rpi: image-deps
	@dpkg --print-foreign-architectures | grep -qx arm64 || { \
	  echo "Adding arm64 to dpkg's architectures (the Pi image's cross-compiled wheels)"; \
	  dpkg --add-architecture arm64 && apt-get update -qq; }
	@$(MAKE) --no-print-directory deb-deps DEB_PACKAGES="$(IMAGE_RPI_DEB_PACKAGES)"

# Rebuilt when anything that goes into it changed (mmdebstrap takes the newest bookworm).
IMAGE_SOURCES := $(shell git ls-files edgecoder _speedups image systemd pyproject.toml setup.py \
	README.md 2>/dev/null)

$(IMAGE_X86): $(STAMP) $(IMAGE_SOURCES)
	@$(MAKE) --no-print-directory image-deps
	image/build.sh x86_64 $(BIN)/python

image-x86: $(IMAGE_X86)

# The Raspberry Pi 3/4 image: a manual target, not in CI (5-10 minutes here, most of it
# arm64 package scripts under emulation, plus 5 the first time for llama.cpp's
# cross-compiled wheels; docs/image.md, "Raspberry Pi").
$(IMAGE_RPI): $(STAMP) $(IMAGE_SOURCES)
	@$(MAKE) --no-print-directory image-deps-rpi
	image/build.sh arm64 $(BIN)/python

image-rpi: $(IMAGE_RPI)

# Builds the x86-64 image twice and compares the results (docs/image.md, "Reproducibility").
image-repro: $(STAMP) image-deps
	image/repro.sh x86_64 $(BIN)/python

image-repro-rpi: $(STAMP) image-deps-rpi
	image/repro.sh arm64 $(BIN)/python

# Boots the x86-64 image under QEMU (KVM when usable, else TCG) and drives it from here.
image-test: $(IMAGE_X86) image-deps
	EDGECODER_IMAGE=$(IMAGE_X86) $(BIN)/python -m pytest -m image tests/image $(PYTEST_ARGS)

# Boots the Pi image under qemu-system-aarch64: -M virt (a Pi 4's Cortex-A72) through the
# same checks, and -M raspi3b from the SD card up to the agent's unit starting.
image-test-rpi: $(IMAGE_RPI) image-deps-rpi
	EDGECODER_IMAGE=$(IMAGE_RPI) $(BIN)/python -m pytest -m image tests/image $(PYTEST_ARGS)

# Peers measured side by side with EdgeCoder; kept out of the project's own environment.
BENCH_VENV := .venv-bench
BENCH_PEERS := "litellm[proxy]>=1.50" "llama-cpp-python[server]>=0.3.2"

$(BENCH_VENV)/.installed:
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet $(BENCH_PEERS)
	@touch $@

bench: $(STAMP) $(BENCH_VENV)/.installed
	$(BIN)/python tests/benchmarks/bench_core.py
	$(BIN)/python tests/benchmarks/bench_cli_startup.py
	$(BIN)/python tests/benchmarks/bench_mesh_verify.py
	$(BIN)/python tests/benchmarks/bench_ledger.py
	$(BIN)/python tests/benchmarks/bench_api_overhead.py
	$(BIN)/python tests/benchmarks/bench_concurrent_streams.py
	$(BIN)/python tests/benchmarks/bench_vs_litellm.py 40 $(BENCH_VENV)/bin/python

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-clients .venv-aider $(NODE_CLIENTS)/node_modules build dist *.egg-info .mypy_cache .ruff_cache .hypothesis .pytest_cache
	rm -f _speedups/*.c edgecoder/speedups/_compiled/*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
