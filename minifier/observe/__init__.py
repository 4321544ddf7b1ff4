"""Observation: the traced container, the app's launch with Docker's semantics, the
probing orchestration and the monitors that watch the app (the fanotify watcher; the
ptrace sensor runs as its own process, see minifier.sensor).
"""
