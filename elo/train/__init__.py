"""Training with a fixed loss weighting, TensorBoard logging and the encoder export."""
