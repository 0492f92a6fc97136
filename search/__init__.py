"""Search: evolve the loss weights λ (ELo, Piergiovanni et al., CVPR 2020, §3.3).

* :mod:`search.cli` — the ``elo-search`` command; :mod:`search.settings` — the
  ``search`` config section, parsed and validated once (:class:`SearchSettings`).
* :mod:`search.space` — weight space <-> vector; :mod:`search.strategies` — DEAP
  CMA-ES / GA ask/tell strategies and the strategy of a search's settings.
* :mod:`search.generation` — the generations of a search (population, pending,
  replay, best, state), without Ray; :mod:`search.searcher` — its Ray Tune adapter.
* :mod:`search.run` — the Tune driver; :mod:`search.rundir` — the run directory and
  its log; :mod:`search.prepare` — the data a search needs before its first trial;
  :mod:`search.trainable` — one trial; :mod:`search.failures`, :mod:`search.memory` —
  failed, hung and memory-bound trials; :mod:`search.report` — plots and report.md.
* :mod:`search.fitness` — the label-free fitness functions, one module each.
"""
