"""The ptrace sensor: runs as its own process (`python -m minifier.sensor.tracer`) and
imports nothing of minifier but `records`; the syscall table is data.
"""
