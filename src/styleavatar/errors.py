"""The one exception type that the command line turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line (no traceback shown)."""
