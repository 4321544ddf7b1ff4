"""What a build proves and reports: verification, the JSON/text/Markdown report and the
seccomp profile.
"""
