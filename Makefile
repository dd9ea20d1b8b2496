# The two commands of the README, plus the pieces they are made of.
#   make demo   build and start the demo (simulated HVAC controller behind a gateway)
#   make test   run every test: Rust unit + integration tests, then the end-to-end suite
#               with real Modbus peers (pymodbus, mbpoll) on loopback
.PHONY: demo test test-rust test-e2e deps venv bench

# The e2e suite's Python packages live in a virtual environment of their own: a Debian python3
# refuses system-wide pip (externally-managed-environment), a pyenv python does not; both make
# a venv. Delete the folder to rebuild it.
VENV := .venv-e2e
VENV_PYTHON := $(VENV)/bin/python

# What `make deps` installs with apt, and why (the README lists the same):
#   mbpoll          a Modbus client nobody here wrote (e2e: tests/e2e/test_forwarding.py ...)
#   rsyslog         a real syslog receiver for the audit trail's syslog export (audit tests)
#   rsyslog-gnutls  rsyslog's TLS listener, for syslog over TLS (audit tests)
#   nftables        `nft -c -f` checks the rules `zonegate compile` writes (toolkit, CLI tests),
#                   and loads the one-way rules of tests/e2e/test_replicate_netns.py
#   iproute2        `ip netns`/`ip link`: the two network namespaces of the one-way replication
#                   test (tests/e2e/test_replicate_netns.py)
#   iptables        `iptables-restore --test` checks the iptables target (toolkit tests)
#   chromium        headless screenshot of the HTML report (toolkit report test), and the
#                   browser of the dashboard test (tests/e2e/test_dashboard.py)
#   chromium-driver the WebDriver selenium drives chromium with (tests/e2e/test_dashboard.py)
#   haproxy         the baseline of the gateway benchmark (`make bench`; no test needs it)
#   openssl         mints certificates and runs handshake cases for the Modbus/TCP Security e2e tests
#   python3, python3-venv   the e2e suite's interpreter and its virtual environment
#   curl            the HTTPS client with a client certificate of the admin mutual-TLS test
#                   (tests/e2e/test_admin_tls.py)
#   socat           pty pairs as the serial line of the Modbus RTU tests (gateway tests/it/rtu.rs,
#                   tests/e2e/test_rtu.py, scripts/bench-rtu.sh): no hardware needed
APT_PACKAGES := curl socat mbpoll rsyslog rsyslog-gnutls nftables iptables iproute2 chromium chromium-driver haproxy openssl python3 python3-venv

demo:
	cargo run --release -p zonegate -- demo

test: test-rust test-e2e

test-rust:
	cargo test --workspace --locked

test-e2e: $(VENV)/.installed
	cargo build -p zonegate --locked
	$(VENV_PYTHON) -m pytest -q tests/e2e

# What the tests need from outside Cargo (Debian + PyPI); .ci/run calls this.
deps:
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null
	$(MAKE) venv

# The e2e suite's Python packages (tests/e2e/requirements.txt: pymodbus, pytest) in $(VENV).
venv: $(VENV)/.installed

$(VENV)/.installed: tests/e2e/requirements.txt
	python3 -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -q -r tests/e2e/requirements.txt
	touch $@

bench:
	cargo bench -p zonegate-modbus
	scripts/bench-gateway.sh
