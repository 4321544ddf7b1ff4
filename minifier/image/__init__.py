"""The image model: the filesystem index, users, ELF dependencies, the closure of what
to keep and the one-layer rebuild. Knows nothing of observation or the sensor.
"""
