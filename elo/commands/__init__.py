"""One module per core console command (elo-train, elo-eval, elo-extract, elo-data):
``add_arguments(parser)`` and ``run(args)``, framed by ``elo.cli.run_command``.
elo-search lives with the search layer it drives, in ``search/cli.py``."""
