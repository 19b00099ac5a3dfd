"""The benchmarks of ``tools/benchmark.py``, one module per subcommand.

Each module has ``add_parser(subparsers)`` (which sets ``func``) and a
``run(args)`` that prints a table and returns its rows.
"""
