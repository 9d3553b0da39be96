"""One exception type for everything a user can fix; the CLI turns it into one line and exit code 2."""


class UserError(Exception):
    """A problem with the user's input or environment, with the message saying what to do next."""
