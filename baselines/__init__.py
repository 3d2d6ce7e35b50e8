"""Approximators that are not HDRNet: classic upsampling methods and learned peers."""
