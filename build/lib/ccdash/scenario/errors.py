"""ScenarioError: what is wrong with a scenario, where, and what was expected."""

from __future__ import annotations


class ScenarioError(ValueError):
    """An unreadable or invalid scenario (or drill request).

    The message reads `FILE:LINE: FIELD: problem`, with whichever of file, line
    and field are known; they are also kept as attributes.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = " ".join(problem.split())  # always one line
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self._text())

    def _text(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        parts = [p for p in (where, self.field) if p]
        return ": ".join([*parts, self.problem])
