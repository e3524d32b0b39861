"""Benchmarking every row: the matrix of rows (``matrix``), the run (``run``), its options and
the artifacts it needs, timing rows as each runs alone (``timing``), power sampling and a row's
peak memory (``memory_probe``)."""
