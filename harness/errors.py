"""Errors that stop overnight with a one-line message for the user (exit code 2)."""


class OvernightError(Exception):
    """A problem the user can fix; the message names the file and the fix."""


class TaskError(OvernightError):
    """The task folder or its settings are wrong."""


class GitError(OvernightError):
    """The repository is not in a state overnight can work in."""


class InfrastructureFault(OvernightError):
    """The harness's world failed (engine gone, a Docker call hanging, disk full): not the idea's
    fault. The night pauses and retries; nothing is committed, discarded or recorded for it."""
