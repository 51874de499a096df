"""One exception type for problems a user can fix. The CLI prints its message, never a traceback."""


class FrictionError(Exception):
    """A problem with the user's input or environment; the message names the problem and the fix."""
