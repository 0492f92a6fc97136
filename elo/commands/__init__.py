"""One module per core console command (elo-eval, elo-extract, elo-data):
``add_arguments(parser)`` and ``run(args)``, framed by ``elo.cli.run_command``. The
applications live in their own layer: elo-train in ``baselines/cli.py``, elo-search in
``search/cli.py``."""
