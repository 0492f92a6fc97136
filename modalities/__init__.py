"""Modalities, one file each (rgb, flow, audio): extraction from a decoded clip,
augmentation and the encoder builder. Registered with ``@MODALITIES.register()``."""
