"""Search: weight space <-> vector, DEAP strategies, the Ray Tune searcher adapter,
and label-free fitness functions."""
