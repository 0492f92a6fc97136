"""The model: registries and contracts (modalities, task heads, views), encoders, the
multi-task network, term keys and the weighted objective."""
