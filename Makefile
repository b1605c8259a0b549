# The two commands of the README, and a few conveniences. The scripts under qa/ do the
# work; this file only names them.
.PHONY: demo demo-dev test test-fast deps image bench

deps:
	qa/install-deps

# The appliance: image built, booted in qemu, following the example host document from
# a CouchDB on this machine; ccnqctl answers from inside it. Ctrl-C stops it.
demo:
	qa/install-deps --image
	qa/vm/demo

# Only the daemon, on this machine, with a throw-away site under .dev/.
demo-dev: deps
	qa/demo

# Every test, the appliance image built, booted in qemu and upgraded included (75-90 min
# on 2 cores; CCNQ_BUILD_CHECKS=1 adds the input and reproducibility builds).
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
