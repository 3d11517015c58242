"""revy's benchmarks: what tracking costs compared with Django alone.

Run from the repository root::

    python -m benchmarks                  # SQLite (a file in a temporary directory)
    python -m benchmarks --db postgres    # PostgreSQL from PGHOST/PGPORT/PGUSER/PGDATABASE
    python -m benchmarks --quick          # small counts, a few seconds (CI smoke test)

See `benchmarks/__main__.py` for every option and `benchmarks/cases.py` for what is measured.
"""
