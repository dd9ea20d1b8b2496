# The two commands of the README, plus the pieces they are made of.
#   make demo   build and start the demo (simulated HVAC controller behind a gateway)
#   make test   run every test: Rust unit + integration tests, then the end-to-end suite
#               with real Modbus peers (pymodbus, mbpoll) on loopback
.PHONY: demo test test-rust test-e2e deps bench

demo:
	cargo run --release -p zonegate -- demo

test: test-rust test-e2e

test-rust:
	cargo test --workspace --locked

test-e2e:
	cargo build -p zonegate --locked
	python3 -m pytest -q tests/e2e

# What the tests need from outside Cargo (Debian + PyPI); .ci/run calls this.
deps:
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends mbpoll rsyslog rsyslog-gnutls nftables iptables iproute2 haproxy >/dev/null
	python3 -m pip install -q -r tests/e2e/requirements.txt

bench:
	cargo bench -p zonegate-modbus
	scripts/bench-gateway.sh
