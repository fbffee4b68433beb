#!/usr/bin/env python
"""`python bench.py …` is `archbench …`: the same entry, for a checkout without the console script."""
from archbench.cli import run

if __name__ == "__main__":
    run()
