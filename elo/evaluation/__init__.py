"""Evaluation of exported encoders: linear / kNN / fine-tune probes and their protocol."""
