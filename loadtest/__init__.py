"""Load tests and benchmarks. Not part of the test suite: they measure, they do not assert."""
