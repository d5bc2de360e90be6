"""The one exception type for input a user can fix (a name, a path, an option out of range).

Its message names the problem and the fix in one line; the command line prints it and exits 2.
Every other exception is a bug and keeps its traceback. It subclasses ValueError so that callers
written against the older errors keep working.
"""


class UserError(ValueError):
    """Bad input: unknown model or task, a player out of range, a store made by another model...

    Always one line: a line break in what the user typed (a YAML key, a player name) is shown escaped.
    """

    def __str__(self) -> str:
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")
