"""The data pipeline: video decoding, the clip cache, extraction, dataset layouts and
datasets, and the demo data generator."""
