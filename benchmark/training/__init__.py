"""Training learned models: the loop and its sampler, resumable checkpoints, training curves."""
