"""BYOL and SimSiam: task heads and readable standalone trainers.

Core ELo never imports this package: the heads (``rgb/byol``, ``rgb/simsiam``) join the
task registry through the ``elo.tasks`` entry points of pyproject.toml, which import
:mod:`baselines.byol` and :mod:`baselines.simsiam` (each registers its head, and its
views through :mod:`baselines.augment`)."""
