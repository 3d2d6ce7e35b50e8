"""HDRNet (Gharbi et al. 2017): the low-res coefficient network, the guide and the slicing ops."""
