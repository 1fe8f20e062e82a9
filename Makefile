# nspod — install and test on Debian 12 as root. Every target is idempotent.
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV ?= /opt/nspod/venv
BINDIR ?= /usr/local/bin
DEV_VENV ?= .venv
PYTEST_ARGS ?=
ORACLES ?= /var/cache/nspod-tests/appc
# critest and crictl of cri-tools v1.26.1 (built offline from the tarball beside the checkout), and
# the images critest pulls (tests/harness/cri_images.py), both cached per machine
CRI_SOURCE ?= ../shared/cri
CRI_TOOLS ?= /var/cache/nspod-tests/cri

# runtime: nspawn, machined, D-Bus, decompressors, the pods' networks (CNI plugins, iptables for
# their masquerading, nftables for forwarded ports); build: what pystemd compiles against;
# test: busybox for test images, Go + appc spec source for the actool oracle (Go for critest too), groff and man-db for the man
# pages, vagrant (with a provider, libvirt's) to validate vagrant/Vagrantfile.
# The runtime list is the package's Depends (packaging/debian/control) less the Python libraries,
# which the venv gets from PyPI, plus what the venv itself needs.
DEB_RUNTIME := $(filter-out python3-%,$(shell packaging/control-deps.sh Depends)) python3-venv
DEB_BUILD := gcc libc6-dev pkg-config libsystemd-dev python3-dev
# demo: the demo image is a static busybox
DEB_DEMO := busybox-static
# the kvm flavor (--stage1=kvm): the package's Recommends, installed by make install (which makes the
# flavor's kernel and initramfs from them) as apt installs a package's Recommends by default
DEB_KVM := $(shell packaging/control-deps.sh Recommends)
KVM_ASSETS ?= /var/lib/nspod/kvm
DEB_TEST := $(DEB_DEMO) protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf groff-base man-db vagrant vagrant-libvirt golang-go golang-github-appc-spec-dev shellcheck nginx-light gnupg gpgv openssl curl docker-registry umoci skopeo apache2-utils

.PHONY: demo install test package deb deb-test venv dev-venv helpers lint bench-journal bench-startup bench-import bench-start bench-userns bench-net bench-pull bench-cri clean fresh-check

# Build a small image and run it as a real pod (in a test host when PID 1 is not systemd).
demo: install
	@tests/harness/apt-ensure.sh $(DEB_DEMO)
	tests/harness/demo.sh

UNITDIR ?= /usr/local/lib/systemd/system
TMPFILESDIR ?= /usr/local/lib/tmpfiles.d
SYSUSERSDIR ?= /usr/local/lib/sysusers.d
# a directory systemd-sysctl reads (/etc, /run, /usr/local/lib or /usr/lib's sysctl.d)
SYSCTLDIR ?= /usr/local/lib/sysctl.d
MANDIR ?= /usr/local/share/man
SYSCONFDIR ?= /etc

install: deb venv
	ln -sfn $(VENV)/bin/nspod $(BINDIR)/nspod
	install -D -m 0644 -t $(UNITDIR) units/pod@.service units/nspod-gc.service units/nspod-gc.timer units/nspod-pool.service \
		units/nspod-auto-update.service units/nspod-auto-update.timer \
		units/nspod-metadata.socket units/nspod-metadata-register.socket units/nspod-metadata.service \
		units/nspod-cri.socket units/nspod-cri.service
	install -D -m 0644 units/tmpfiles.d/nspod.conf $(TMPFILESDIR)/nspod.conf
	install -D -m 0644 units/sysusers.d/nspod.conf $(SYSUSERSDIR)/nspod.conf
	install -D -m 0644 units/sysctl.d/60-nspod.conf $(SYSCTLDIR)/60-nspod.conf
	install -d -m 0755 $(SYSCONFDIR)/nspod/pods
	install -D -m 0644 -t $(MANDIR)/man1 packaging/man/*.1
	install -D -m 0644 -t $(MANDIR)/man5 packaging/man/*.5
	install -D -m 0644 -t $(MANDIR)/man7 packaging/man/*.7
	systemd-sysusers $(SYSUSERSDIR)/nspod.conf
	systemd-tmpfiles --create $(TMPFILESDIR)/nspod.conf
	# the inotify limits now, as the next boot will set them (every sysctl.d file read, a later
	# file's value winning), and no other key
	/lib/systemd/systemd-sysctl --prefix=fs.inotify
	# the kvm flavor's kernel and initramfs (idempotent); only --stage1=kvm needs them
	$(VENV)/bin/python -m stage1.kvm.assets $(KVM_ASSETS) || echo "nspod: no kvm flavor assets (install $(DEB_KVM))"
	@if [ -d /run/systemd/system ]; then systemctl daemon-reload; \
		systemctl enable --now nspod-metadata.socket nspod-metadata-register.socket; fi
	@$(BINDIR)/nspod version

deb:
	@tests/harness/apt-ensure.sh $(DEB_RUNTIME) $(DEB_BUILD) $(DEB_KVM)

deb-test:
	@tests/harness/apt-ensure.sh $(DEB_RUNTIME) $(DEB_BUILD) $(DEB_TEST) $(DEB_KVM)

# nspod-pidns (stage1/helpers/pidns.c): a CRI container's PID namespace of its own; static, since it
# runs in the container's root
HELPERS := stage1/helpers/nspod-pidns
helpers: $(HELPERS)
stage1/helpers/nspod-pidns: stage1/helpers/pidns.c
	gcc -static -Os -Wall -Werror -o $@ $<

venv: helpers
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check .
	# same version number, new code: make sure the checkout's code is what gets installed
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall .

dev-venv: deb-test helpers
	@test -x $(DEV_VENV)/bin/python || $(PYTHON) -m venv $(DEV_VENV)
	$(DEV_VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'

# The whole session runs where systemd is PID 1: here on a systemd host, else in a test host.
# The actool oracle, critest and its images are built first, outside: the test host has no network.
# Without PYTEST_ARGS, suite.sh runs beside the systemd tests those that need none (tests/unit, the
# linters, tests/net) and, on a fresh Debian 12 root (debootstrap, cached), the .deb installed with
# apt and checked (packaging/, tests/harness/fresh-package.sh), then a clean clone's `make demo`.
test: install dev-venv
	tests/harness/build-appc-oracles.sh $(ORACLES)
	bash $(CRI_SOURCE)/build-cri-tools.sh $(CRI_TOOLS)
	$(DEV_VENV)/bin/python tests/harness/cri_images.py
	NSPOD_TEST_STRICT=1 NSPOD_ORACLES=$(ORACLES) NSPOD_CRI_TOOLS=$(CRI_TOOLS) \
		tests/harness/suite.sh $(DEV_VENV)/bin/python $(PYTEST_ARGS)

lint: dev-venv
	$(DEV_VENV)/bin/python -m pytest tests/test_linters.py

bench-import: install dev-venv
	$(DEV_VENV)/bin/python bench/import.py

# start.py: issue #4's measures (its target retired by #14: a failure does not stop warm.py);
# flavors.py: a row per stage1 flavor against its own floor (issue #25)
bench-start: install dev-venv
	-tests/harness/in-testhost.sh $(DEV_VENV)/bin/python bench/start.py --nspod $(BINDIR)/nspod
	tests/harness/in-testhost.sh $(DEV_VENV)/bin/python bench/warm.py --nspod $(BINDIR)/nspod
	tests/harness/in-testhost.sh $(DEV_VENV)/bin/python bench/flavors.py --nspod $(BINDIR)/nspod

bench-userns: install dev-venv
	tests/harness/in-testhost.sh $(DEV_VENV)/bin/python bench/userns.py --nspod $(BINDIR)/nspod

bench-net: install dev-venv
	tests/harness/in-testhost.sh $(DEV_VENV)/bin/python bench/net.py --nspod $(BINDIR)/nspod

bench-pull: install dev-venv
	@tests/harness/apt-ensure.sh docker-registry umoci skopeo
	tests/harness/in-testhost.sh $(DEV_VENV)/bin/python bench/pull.py --nspod $(BINDIR)/nspod

# CRI v1 lifecycle: nspod cri (cold, pooled) against Debian's containerd 1.6 + runc, one run
DEB_BENCH_CRI := containerd runc containernetworking-plugins docker-registry umoci skopeo gcc libc6-dev
bench-cri: install dev-venv
	@tests/harness/apt-ensure.sh $(DEB_BENCH_CRI)
	tests/harness/in-testhost.sh $(DEV_VENV)/bin/python bench/cri.py --nspod $(BINDIR)/nspod

bench-journal: install dev-venv
	@tests/harness/apt-ensure.sh python3-systemd
	tests/harness/in-testhost.sh /usr/bin/python3 bench/journal.py

bench-startup: install
	$(VENV)/bin/python bench/startup.py --nspod $(BINDIR)/nspod

# The Debian package: build/deb/nspod_<version>_<arch>.deb (lintian must show no errors)
package: helpers
	packaging/build-deb.sh build/deb

# The README's two commands in a clean clone on a freshly debootstrapped Debian 12 root (cached).
fresh-check:
	tests/harness/fresh-check.sh both

clean:
	rm -rf $(DEV_VENV) build *.egg-info
