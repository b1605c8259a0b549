# The two commands of the README, and a few conveniences. The scripts under qa/ do the
# work; this file only names them.
.PHONY: demo test test-vm deps image bench

deps:
	qa/install-deps

demo: deps
	qa/demo

test: deps
	qa/test

test-vm:
	qa/install-deps --image
	CCNQ_VM_TESTS=1 qa/test

image:
	image/build

bench:
	qa/bench/run
