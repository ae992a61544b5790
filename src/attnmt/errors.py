"""User-facing errors: one line that names the problem and the fix, exit code 2, no traceback."""


class UserError(Exception):
    """A mistake in the user's input (config, files, options). The CLI prints it on one line."""

    prefix = "error"

    def __str__(self) -> str:
        return f"{self.prefix}: {super().__str__()}"


class ConfigError(UserError):
    prefix = "config error"


class DataError(UserError):
    prefix = "data error"
