"""The subcommands of ``tools/benchmark.py``: each module has
``add_parser(subparsers)`` and ``run(args)``, which prints a table and
returns its rows."""
