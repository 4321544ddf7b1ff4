"""The project's error hierarchy and exit codes; only the CLI turns them into exits."""

from __future__ import annotations

from enum import IntEnum
from typing import Optional

__all__ = [
    "ExitStatus",
    "EXIT_MEANINGS",
    "MinifyError",
    "UsageError",
    "ImageError",
    "EngineError",
    "AppError",
    "ProbeError",
    "VerifyError",
    "ThresholdError",
    "CapabilityError",
    "IncompleteError",
    "Interrupted",
    "ERROR_SCHEMA",
    "failure_document",
]

ERROR_SCHEMA = "minify.error/v1"


class ExitStatus(IntEnum):
    """Documented exit codes of `minify` (README "Exit codes", `minify build --help`)."""

    OK = 0
    ERROR = 1  # unexpected internal error (a bug: run with --debug)
    USAGE = 2  # bad option, option value or input file
    IMAGE = 3  # image missing, invalid reference, refused tag, unusable image
    ENGINE = 4  # Docker engine not reachable or failed
    APP = 5  # the app did not start, exited early or never became ready
    PROBE = 6  # probing failed: a 5xx, no request succeeded, nothing that speaks HTTP
    VERIFY = 7  # the minified image does not behave like the original, or was not verifiable
    THRESHOLD = 8  # --min-ratio / --max-size not met
    CAPABILITY = 9  # ptrace or fanotify not permitted here
    INCOMPLETE = 10  # the self-check found the planned image missing what a kept file needs
    INTERRUPTED = 130  # SIGINT (Ctrl-C)
    TERMINATED = 143  # SIGTERM


EXIT_MEANINGS = {
    ExitStatus.OK: "the image was built (and verified, unless --no-verify); xray: the report "
                   "was made and met its thresholds",
    ExitStatus.ERROR: "internal error: a bug; --debug shows the traceback",
    ExitStatus.USAGE: "bad option, option value or input file (nothing was started)",
    ExitStatus.IMAGE: "image missing, invalid reference, unusable image, or refused tag",
    ExitStatus.ENGINE: "the Docker engine is not reachable, failed, or runs rootless; doctor: "
                       "the engine cannot be used or cannot start a container",
    ExitStatus.APP: "the app did not start, exited early or never answered",
    ExitStatus.PROBE: "probing failed: a 5xx answer, no request succeeded, a port that does "
                      "not speak HTTP, or an API document that is not there",
    ExitStatus.VERIFY: "verification failed: the minified image does not behave like the "
                       "original, or could not be verified (image kept, labelled)",
    ExitStatus.THRESHOLD: "--min-ratio or --max-size not met (image kept); xray: --max-waste, "
                          "--min-efficiency or --max-finding-bytes not met",
    ExitStatus.CAPABILITY: "ptrace or fanotify is not permitted here; doctor: another check "
                           "failed",
    ExitStatus.INCOMPLETE: "a kept file needs an interpreter, library or link target the "
                           "minified image would lack (nothing built; see --allow-incomplete)",
    ExitStatus.INTERRUPTED: "interrupted by SIGINT (Ctrl-C); everything was cleaned up",
    ExitStatus.TERMINATED: "terminated by SIGTERM; everything was cleaned up",
}


class MinifyError(Exception):
    """Base of every error minify reports to the user as one line."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        # Extra lines (an app's last output, a hint) shown below the one-line message.
        self.detail = detail
        # The run's report document, when the error came after one was made (a failed
        # verification, a threshold): --json's error document carries it.
        self.report: Optional[dict] = None


class UsageError(MinifyError):
    exit_status = ExitStatus.USAGE


class ImageError(MinifyError):
    exit_status = ExitStatus.IMAGE


class EngineError(MinifyError):
    exit_status = ExitStatus.ENGINE


class AppError(MinifyError):
    exit_status = ExitStatus.APP


class ProbeError(MinifyError):
    exit_status = ExitStatus.PROBE


class VerifyError(MinifyError):
    exit_status = ExitStatus.VERIFY


class ThresholdError(MinifyError):
    exit_status = ExitStatus.THRESHOLD


class CapabilityError(MinifyError):
    exit_status = ExitStatus.CAPABILITY


class IncompleteError(MinifyError):
    exit_status = ExitStatus.INCOMPLETE


class Interrupted(MinifyError):
    """Raised by the signal handler for SIGINT/SIGTERM so cleanup runs on the way out."""

    def __init__(self, signum: int) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}")
        self.signum = signum
        self.exit_status = (
            ExitStatus.TERMINATED if signum == signal.SIGTERM else ExitStatus.INTERRUPTED
        )


def failure_document(command: str, status: int, message: str, detail: str = "",
                     report: Optional[dict] = None) -> dict:
    """What `--json` prints on stdout when a command fails (schema minify.error/v1): the
    error as stderr says it, its exit code and that code's name, and the report when the
    run got far enough to make one (else null)."""
    try:
        name = ExitStatus(status).name.lower()
    except ValueError:
        name = "error"
    return {"schema": ERROR_SCHEMA, "command": command,
            "error": {"exit_code": int(status), "exit_name": name, "message": message,
                      "detail": detail},
            "report": report}
