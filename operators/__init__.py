"""Reference image operators: pure functions image -> image (float32 HxWx3 RGB in [0, 1])."""
