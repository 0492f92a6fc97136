"""BYOL and SimSiam: registered task heads and readable standalone trainers."""
