"""User-facing errors: one line that names the problem and the fix, exit code 2, no traceback."""


class UserError(Exception):
    """A mistake in the user's input (config, files, options). The CLI prints it on one line."""

    prefix = "error"

    def __str__(self) -> str:
        return f"{self.prefix}: {super().__str__()}"


def field_error(field: str, message: str) -> UserError:
    """A :class:`UserError` about one request field (the server answers 422 naming it)."""
    error = UserError(message)
    error.field = field
    return error


class ConfigError(UserError):
    prefix = "config error"


class DataError(UserError):
    prefix = "data error"


class WrongTaskError(UserError):
    """A run of one task used as another; ``task`` is the task the run was trained for (the
    CLI adds the command that uses it)."""

    def __init__(self, message: str, task: str):
        super().__init__(message)
        self.task = task
