"""One module per console command: ``add_arguments(parser)`` and ``run(args)``."""
