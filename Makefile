# linuxnet.netns — everything runs as root on a Debian/Ubuntu machine.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
COLLECTIONS := $(CURDIR)/build/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_LOCALHOST_WARNING := false
export ANSIBLE_INVENTORY_UNPARSED_WARNING := false
export PATH := $(VENV)/bin:$(PATH)
APT_PACKAGES := python3-venv iproute2 iptables iputils-ping kmod graphviz nftables python3-nftables wireguard-go wireguard-tools
# The real-kernel tests run in a network and mount namespace of their own (a busy host's namespaces
# are not in what they compare; theirs are not bound on the host).
ISOLATED = $(PY) $(CURDIR)/tests/isolated.py

.PHONY: help deps venv core-venvs sanity sanity-oldest sanity-newest collection demo demo-absent test unit kernel units targets tarball-test ansible-test-tree playbook-tests pytest bench bench-nft molecule molecule-deps molecule-destroy clean gates gates-changelog gates-docs gates-lint gates-ee

help:
	@echo "make demo   - build the reference topology on this host with playbooks/demo.yml, verify it, remove it"
	@echo "make test   - run every test (root, real kernel): make sanity, pytest, units, targets, tarball-test, gates, then molecule"
	@echo "make units  - ansible-test units with the oldest and the newest ansible-core"
	@echo "make targets - ansible-test integration (tests/integration/targets) with both cores, in a namespace of its own"
	@echo "make tarball-test - build the collection tarball, install it into a fresh path, run the demo play with that copy"
	@echo "make molecule - Molecule on three real systemd hosts (systemd-nspawn): converge, idempotence, verify, reboot"
	@echo "make sanity - ansible-test sanity with the oldest claimed and the newest ansible-core"
	@echo "make gates  - the ecosystem's gates: changelog lint, docs render, ansible-lint production, EE context"
	@echo "make bench  - benchmarks against the floor and today's tools; writes bench/RESULTS.md (+ .png)"
	@echo "make bench-nft - the reduced run: W_nft(N) against the kernel floor up to N=5000, ifstate on W_0(N)"

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	touch $@

# Debian's nftables binding (python3-nftables: pure Python over libnftables.so.1 with ctypes) is where a managed
# host's /usr/bin/python3 finds it; the venv's interpreter does not see dist-packages, so the venv gets that one
# package as a symlink (not the whole of dist-packages, whose other modules would shadow the venv's).
# Every virtualenv whose Python runs the modules gets it (the managed hosts' pyroute2 0.7 ones below too).
DEBIAN_NFTABLES := /usr/lib/python3/dist-packages/nftables
%/.nftables: %/.installed
	@[ -d $(DEBIAN_NFTABLES) ] || { echo "$(DEBIAN_NFTABLES) is missing: apt-get install python3-nftables (make deps)"; exit 1; }
	ln -sfn $(DEBIAN_NFTABLES) "$$($*/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nftables"
	touch $@

venv: deps $(VENV)/.installed $(VENV)/.nftables

# A managed host's Python as Debian 12 has it: pyroute2 0.7.2 (the controller venv has 0.9), and as
# Debian 13 has it: pyroute2 0.7.7.
VENV07 ?= $(CURDIR)/.venv-pyroute2-0.7
$(VENV07)/.installed: tests/requirements.txt
	python3 -m venv $(VENV07)
	$(VENV07)/bin/pip install -q 'pyroute2==0.7.2' "$$(grep '^ansible-core' tests/requirements.txt)"
	touch $@
VENV077 ?= $(CURDIR)/.venv-pyroute2-0.7.7
$(VENV077)/.installed: tests/requirements.txt
	python3 -m venv $(VENV077)
	$(VENV077)/bin/pip install -q 'pyroute2==0.7.7' "$$(grep '^ansible-core' tests/requirements.txt)"
	touch $@

# The CI matrix (issue 17.9): the oldest ansible-core that meta/runtime.yml claims and the newest release, each
# in a virtualenv of its own. 2.21 needs a controller Python 3.12+: the first interpreter found that really is one.
CORE_OLDEST := 2.16.19
CORE_NEWEST := 2.21.5
VENV_OLDEST ?= $(CURDIR)/.venv-core-oldest
VENV_NEWEST ?= $(CURDIR)/.venv-core-newest
PY_NEWEST ?= $(shell for p in /usr/bin/python3.13 /usr/bin/python3.12 /root/.pyenv/versions/3.13*/bin/python3 \
	/root/.pyenv/versions/3.12*/bin/python3; do [ -x "$$p" ] && "$$p" -c 'import sys, venv, ssl; \
	sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo "$$p"; break; }; done)
$(VENV_OLDEST)/.installed: tests/requirements.txt
	python3 -m venv $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/pip install -q 'ansible-core==$(CORE_OLDEST)' $$(grep -v '^ansible-core' tests/requirements.txt | grep -v '^#')
	touch $@
$(VENV_NEWEST)/.installed: tests/requirements.txt
	@[ -n "$(PY_NEWEST)" ] || { echo "no Python 3.12+ found for ansible-core $(CORE_NEWEST) (install python3.12 or set PY_NEWEST)"; exit 1; }
	$(PY_NEWEST) -m venv $(VENV_NEWEST)
	$(VENV_NEWEST)/bin/pip install -q 'ansible-core==$(CORE_NEWEST)' $$(grep -v '^ansible-core' tests/requirements.txt | grep -v '^#')
	touch $@
core-venvs: $(VENV_OLDEST)/.installed $(VENV_NEWEST)/.installed

# ansible-test sanity (issue 17.1) on the oldest claimed and the newest ansible-core, every test in a virtualenv of
# ansible-test's own (--venv, requirements from the package index). ansible-test reads a collection only at
# .../ansible_collections/linuxnet/netns and tests the files git lists there: the run works on a copy of this
# checkout's files (tracked and new, not ignored) as a git repository of its own. It keeps its virtualenvs and
# caches under ~/.ansible/test: HOME points into build/sanity, so nothing outside the checkout is written. Its pip
# bootstrap would download get-pip.py from a host CI cannot reach: the cache holds .ci/ansible_test_get_pip.py
# instead, under the name of each pip version the two cores ask for (23.1.2, 25.2).
# tests/sanity/ignore-2.16.txt and -2.21.txt hold what pylint cannot know, each with its reason. Measured on 2 cores: ~14 minutes for both cores
# from an empty build/sanity (6 + 7.5, mostly installing ansible-test's virtualenvs), ~3.5 minutes again.
SANITY_DIR := $(CURDIR)/build/sanity
SANITY_HOME := $(SANITY_DIR)/home
SANITY_PIP_VERSIONS := 23.1.2 25.2
# e.g. SANITY_ARGS="--test pep8 --test pylint" for some tests only
SANITY_ARGS ?=
# $(1): the core's virtualenv, $(2): the name of its copy.
define sanity_run
	@set -euo pipefail; copy=$(SANITY_DIR)/$(2)/ansible_collections/linuxnet/netns; \
	rm -rf $(SANITY_DIR)/$(2) && mkdir -p "$$copy" $(SANITY_HOME)/.ansible/test/cache; \
	git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do \
		if [ -e "$$f" ] || [ -L "$$f" ]; then printf '%s\0' "$$f"; fi; done | tar --null -T - -cf - | tar -xf - -C "$$copy"; \
	git -C "$$copy" init -q && git -C "$$copy" add -A; \
	for v in $(SANITY_PIP_VERSIONS); do cp .ci/ansible_test_get_pip.py $(SANITY_HOME)/.ansible/test/cache/get_pip_$${v//./_}.py; done; \
	python=$$($(1)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	echo "ansible-test sanity: ansible-core $$($(1)/bin/python -c 'import ansible; print(ansible.__version__)'), Python $$python"; \
	cd "$$copy" && HOME=$(SANITY_HOME) PATH=$(1)/bin:$$PATH $(1)/bin/ansible-test sanity --venv --python "$$python" --color no $(SANITY_ARGS)
endef
sanity: sanity-oldest sanity-newest
sanity-oldest: deps $(VENV_OLDEST)/.installed
	$(call sanity_run,$(VENV_OLDEST),oldest)
sanity-newest: deps $(VENV_NEWEST)/.installed
	$(call sanity_run,$(VENV_NEWEST),newest)

# The collection is installed by linking the repository root into an ansible_collections tree.
collection:
	@mkdir -p $(COLLECTIONS)/ansible_collections/linuxnet
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/linuxnet/netns

demo: venv collection
	ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml
	ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml -e state=absent

unit: venv collection
	$(PY) -m pytest -q tests/unit

# The real-kernel pytest suite: what a target cannot do (whole-host snapshots, faults, races, bad-input corpus).
kernel: venv collection
	$(ISOLATED) $(PY) -m pytest -q tests/kernel

# ansible-test runs in a tree at .../ansible_collections/linuxnet/netns only: a copy of this checkout's files
# (tracked and new, not ignored) as a git repository of its own, so that ansible-test sees exactly those.
AT_TREE := $(CURDIR)/build/ansible-test/ansible_collections/linuxnet/netns
ansible-test-tree:
	rm -rf $(AT_TREE) && mkdir -p $(AT_TREE)
	git ls-files -z --cached --others --exclude-standard | tar --null --files-from - --ignore-failed-read -cf - \
		| tar -C $(AT_TREE) -xf -
	cd $(AT_TREE) && git init -q && git add -A
# The interpreter's version for ansible-test --python (it runs python3.X from PATH: the venv's own).
py_version = $$($(1)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# The unit tests (tests/unit/plugins/..., tests/unit/roles/...) through ansible-test with the oldest claimed
# and the newest ansible-core; ~3 minutes for both on 2 cores (~1.5 each; ansible-test forks every test).
units: core-venvs ansible-test-tree
	cd $(AT_TREE) && for venv in $(VENV_OLDEST) $(VENV_NEWEST); do \
		PATH=$$venv/bin:$$PATH $$venv/bin/ansible-test units --local --color no --python $(call py_version,$$venv) || exit 1; done

# One target per module (tests/integration/targets/NAME: check mode, apply, again, check again, removal) with
# both cores, inside tests/isolated.py so that they cannot touch the host's namespaces; ~5 minutes for both
# on 2 cores (~2.5 each).
targets: core-venvs ansible-test-tree
	cd $(AT_TREE) && for venv in $(VENV_OLDEST) $(VENV_NEWEST); do \
		PATH=$$venv/bin:$$PATH $(ISOLATED) $$venv/bin/ansible-test integration --local --allow-destructive --color no \
			--python $(call py_version,$$venv) || exit 1; done

# The collection as users get it: built into build/tarball, installed into a fresh collections path, and the
# demo play (from the installed copy) run with it, then its removal, both in one namespace of their own;
# ansible-doc shows which copy Ansible loads. ~25 seconds.
TARBALL_DIR := $(CURDIR)/build/tarball
tarball-test: venv
	rm -rf $(TARBALL_DIR) && mkdir -p $(TARBALL_DIR)
	ansible-galaxy collection build --output-path $(TARBALL_DIR) .
	installed=$$(mktemp -d) && trap 'rm -rf "$$installed"' EXIT && \
	export ANSIBLE_COLLECTIONS_PATH="$$installed" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false && \
	ansible-galaxy collection install --collections-path "$$installed" $(TARBALL_DIR)/linuxnet-netns-*.tar.gz && \
	copy="$$installed/ansible_collections/linuxnet/netns" && \
	ansible-doc --json -t module linuxnet.netns.topology | $(PY) -c 'import json, sys; \
		path = json.load(sys.stdin)["linuxnet.netns.topology"]["doc"]["filename"]; print("ansible-doc loads", path); \
		sys.exit(not path.startswith(sys.argv[1] + "/"))' "$$copy" && \
	$(ISOLATED) sh -ec 'ansible-playbook -i "$$1/playbooks/inventory/localhost.yml" "$$1/playbooks/demo.yml"; \
		ansible-playbook -i "$$1/playbooks/inventory/localhost.yml" "$$1/playbooks/demo.yml" -e state=absent; \
		! test -e /run/netns/msb' tarball-test "$$copy"

# Every test: ansible-test sanity, pytest (real kernel), ansible-test units and targets, the installed tarball,
# the ecosystem's gates (~1 min), then Molecule on real systemd hosts.
test: sanity pytest units targets tarball-test gates molecule

# Every pytest test with pyroute2 0.9, then the module and restore-program tests again with the managed
# hosts' pyroute2: Debian 12's 0.7.2 and Debian 13's 0.7.7.
# (Not the playbook and role tests, which run Ansible's own modules too, nor the soak test.)
MODULE_TESTS := tests/kernel --ignore=tests/kernel/test_playbooks.py --ignore=tests/kernel/test_services_role.py \
	--ignore=tests/kernel/test_soak.py
pytest: venv $(VENV07)/.nftables $(VENV077)/.nftables collection
	$(ISOLATED) $(PY) -m pytest -q tests
	LINUXNET_MODULE_PYTHON=$(VENV07)/bin/python $(ISOLATED) $(PY) -m pytest -q $(MODULE_TESTS)
	LINUXNET_MODULE_PYTHON=$(VENV077)/bin/python $(ISOLATED) $(PY) -m pytest -q $(MODULE_TESTS)

# Benchmarks (issue 5): W(N) for N=10..1000, every contender, median of 3; ~30 minutes on 2 cores.
# The `ansible` package (for the community.general contender only) lives in its own virtualenv.
BENCH_ANSIBLE ?= $(CURDIR)/.venv-bench-ansible
$(BENCH_ANSIBLE)/.installed:
	python3 -m venv $(BENCH_ANSIBLE)
	$(BENCH_ANSIBLE)/bin/pip install -q 'ansible==10.7.0'
	touch $@

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	touch $@

BENCH_ARGS ?= --sizes 10,100,500,1000 --repeat 3
bench: venv $(VENV)/.bench-installed $(BENCH_ANSIBLE)/.installed collection
	$(PY) bench/run.py $(BENCH_ARGS) --output bench/RESULTS.md

# The reduced run (issue: W_nft(N), the kernel floor, ifstate): ~25 minutes on 2 cores shared with other jobs.
BENCH_NFT_ARGS ?= --sizes 10,100,1000,5000 --repeat 3 --repeat-at 5000=1 \
	--contenders floor,restore,kernel-floor,restore-nft,restore-w0,ifstate
bench-nft: venv $(VENV)/.bench-installed collection
	BENCH_TARGET=bench-nft $(PY) bench/run.py $(BENCH_NFT_ARGS) --output bench/RESULTS.md

# Molecule (issues 4, 18): a mixed fleet of Debian 12 and 13 hosts booted with systemd-nspawn from debootstrap
# images, each release with a local apt repository (cached under /var/cache/linuxnet-netns), reached over SSH;
# measured 8.8 minutes on 2 cores with the images cached; ~10 with gates and the image builds in a clean clone.
MOLECULE_VENV ?= $(CURDIR)/.venv-molecule
MOLECULE_APT := systemd-container debootstrap openssh-client dpkg-dev wireguard-tools
$(MOLECULE_VENV)/.installed: molecule/requirements.txt
	python3 -m venv $(MOLECULE_VENV)
	$(MOLECULE_VENV)/bin/pip install -q --upgrade pip
	$(MOLECULE_VENV)/bin/pip install -q -r molecule/requirements.txt
	touch $@

molecule-deps: deps
	@missing=""; for p in $(MOLECULE_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

molecule: molecule-deps $(MOLECULE_VENV)/.installed collection
	PATH=$(MOLECULE_VENV)/bin:$$PATH molecule test

molecule-destroy: $(MOLECULE_VENV)/.installed collection
	PATH=$(MOLECULE_VENV)/bin:$$PATH molecule destroy

# The ecosystem's gates (issue 17), with the tools in a virtualenv of their own (tests/requirements-gates.txt).
GATES_VENV ?= $(CURDIR)/.venv-gates
$(GATES_VENV)/.installed: tests/requirements-gates.txt
	python3 -m venv $(GATES_VENV)
	$(GATES_VENV)/bin/pip install -q -r tests/requirements-gates.txt
	touch $@

# The changelog fragments and changelogs/changelog.yaml are what antsibull-changelog release accepts.
gates-changelog: $(GATES_VENV)/.installed
	$(GATES_VENV)/bin/antsibull-changelog lint
	$(GATES_VENV)/bin/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# Every module's documentation and the role's render, none "malformed" (what docs.ansible.com would publish).
gates-docs: $(GATES_VENV)/.installed collection
	PATH=$(GATES_VENV)/bin:$$PATH antsibull-docs lint-collection-docs --plugin-docs .
	rm -rf build/docs && mkdir -p build/docs
	PATH=$(GATES_VENV)/bin:$$PATH antsibull-docs collection --use-current --dest-dir build/docs linuxnet.netns
	@if grep -rli malformed build/docs; then echo "malformed documentation (above)"; exit 1; fi

gates-lint: $(GATES_VENV)/.installed collection
	PATH=$(GATES_VENV)/bin:$$PATH ansible-lint --offline --profile production roles/ playbooks/ molecule/

# A build context for an execution environment with this collection (no container engine needed): the
# introspection its image build runs must find the collection's Python and system requirements.
EE_DIR := $(CURDIR)/build/ee
gates-ee: $(GATES_VENV)/.installed
	rm -rf $(EE_DIR) && mkdir -p $(EE_DIR)
	$(GATES_VENV)/bin/ansible-galaxy collection build --output-path $(EE_DIR)/dist .
	cp tests/ee/execution-environment.yml tests/ee/requirements.yml $(EE_DIR)/
	cp $(EE_DIR)/dist/linuxnet-netns-*.tar.gz $(EE_DIR)/linuxnet-netns.tar.gz
	cd $(EE_DIR) && $(GATES_VENV)/bin/ansible-builder create --context context
	cd $(EE_DIR)/context/_build && $(GATES_VENV)/bin/ansible-galaxy collection install --force -r requirements.yml --collections-path $(EE_DIR)/installed
	$(GATES_VENV)/bin/python $(EE_DIR)/context/_build/scripts/introspect.py introspect \
		--write-pip=$(EE_DIR)/requirements.txt --write-bindep=$(EE_DIR)/bindep.txt $(EE_DIR)/installed
	grep -q '^pyroute2>=0.7.2,<0.10' $(EE_DIR)/requirements.txt
	for p in iproute2 iptables python3-pyroute2; do grep -q "^$$p \[platform:dpkg\]" $(EE_DIR)/bindep.txt || exit 1; done

gates: gates-changelog gates-docs gates-lint gates-ee

clean:
	rm -rf build $(VENV) $(VENV07) $(VENV077) $(VENV_OLDEST) $(VENV_NEWEST) $(BENCH_ANSIBLE) $(MOLECULE_VENV) $(GATES_VENV) .pytest_cache
