"""Benchmarks that run outside the test suite: `make perf-gpu` (benchmarks/gpu.sh) and the workload the speed
benchmarks share."""
