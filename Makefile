# The two commands of the README, and a few conveniences. The scripts under qa/ do the
# work; this file only names them.
.PHONY: demo test test-fast deps image bench

deps:
	qa/install-deps

demo: deps
	qa/demo

# Every test, the appliance image built and booted in qemu included (~10 min).
test:
	qa/install-deps --image
	CCNQ_VM_TESTS=1 qa/test

# Without the image (~5 min).
test-fast: deps
	qa/test

image:
	qa/install-deps --image
	cargo build --release -p ccnqd -p ccnqctl
	image/build

bench:
	qa/bench/run
