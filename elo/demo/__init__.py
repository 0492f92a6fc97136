"""``make demo``: the whole method on the built-in demo dataset, in one command
(``python -m elo.demo``; docs/demo.md).

1. make the demo dataset (``elo-data demo``) and cache its modalities (``elo-extract``):
   :func:`elo.demo.driver.make_data`;
2. evolve the loss (``elo-search --population 64`` with the demo profile):
   :func:`elo.demo.driver.evolve`;
3. train, at one shared step budget, the evolved loss, uniform weights (and the RLW and
   uncertainty weightings of elo/train/weighting.py), the best single task of the
   search's seed points by the fitness, the best of the fittest ``--oracle-k`` single
   tasks by the test probe (an oracle: it reads the labels), a supervised control and
   the BYOL / SimSiam baselines; a random-init encoder and the parameter-free probes are
   exported untrained (:func:`elo.demo.rows.contender_table` lists the rows);
4. evaluate every encoder with the same linear probe on the demo test split, for the
   action label and a nuisance label (``--nuisance``: the object's identity, or its
   texture on style c) (:func:`elo.demo.run_rows.contender_row`, one row each), and print
   one table (:func:`elo.demo.table.comparison_table`).

Steps 3-4 run ``--jobs`` rows at a time (default 2), each row's subprocesses with
``cores // jobs`` torch threads (``OMP_NUM_THREADS``) and their output in
``RUN/logs/<row>.log``. Every step is one console command run as a subprocess, so each
is rerunnable alone; finished steps are skipped on a rerun (the search resumes). Seeds
are printed. docs/demo.md: the rows, the timing, and ``benchmarks/bench_demo.py``.

The parts: :mod:`elo.demo.options` (the command line), :mod:`elo.demo.processes`
(subprocesses, rows side by side, the machine), :mod:`elo.demo.rows` (what each row
trains, the oracle), :mod:`elo.demo.run_rows` (training and probing the rows, longest
first), :mod:`elo.demo.table` (the Markdown table) and :mod:`elo.demo.driver` (the four
steps in order).
"""
