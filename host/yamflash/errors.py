"""One exception type for everything a user can fix; the CLI turns it into one line and exit code 2."""


class UserError(Exception):
    """A problem with the user's input or environment, with the message saying what to do next."""


class GateFailed(UserError):
    """A check the user asked for failed (validate's --fail-under, bench's --baseline): the CLI prints it as
    ``yamflash: <command>: <what failed>`` and exits 1, so CI tells a failed gate from a usage error (2)."""

    exit_code = 1
