"""Benchmarks: each module compares our code with a baseline in the same run and prints ratios."""
