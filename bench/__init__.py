"""Load benchmarks against a running server: `python -m bench run --scenario signin-me`.

Loopback only, bounded in time and in requests; results are JSON files under bench/results/.
See README.md ("Benchmarks") for how to start the server and read the numbers.
"""
