"""The one exception family a user can cause. The CLI prints it as one line and exits 2."""


class VanexportError(Exception):
    """A problem with the user's input or environment, with the fix in `hint`."""

    def __init__(self, problem: str, hint: str = ""):
        self.problem = problem
        self.hint = hint
        super().__init__(f"{problem}: {hint}" if hint else problem)


class ValidationFailed(VanexportError):
    """An artifact was written but does not match its PyTorch reference within tolerance."""
