"""YAML configs shipped with ELo (found through importlib.resources)."""
