"""The library every other part stands on: errors, settings checks, atomic files, image I/O, timing, devices and threads."""
