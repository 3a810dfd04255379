"""Reading one value of a scenario file: its type, its range, its allowed keys, each
failure a ScenarioError naming the file, the line and the field."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ccdash.hints import did_you_mean
from ccdash.scenario.errors import ScenarioError
from ccdash.scenario.locate import KeyLocator, Path, dotted

NAME_LIMIT = 200  # characters in a scenario's names, targets, versions
TEXT_LIMIT = 1000  # characters in its free text (a description, an alert's message)


def kind_of(v: Any) -> str:
    """How an error message names a TOML value's type ("an integer", "a table", ...)."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(v), type(v).__name__)


class FieldReader:
    """Walks the parsed TOML, checking each value where it is read."""

    def __init__(self, data: dict[str, Any], text: str, file: str) -> None:
        self.data = data
        self.file = file
        self.where = KeyLocator(text)
        self.duration = 0.0

    def fail(self, path: Path, problem: str) -> ScenarioError:
        return ScenarioError(
            problem, file=self.file, line=self.where.line_of(path), field=dotted(path) or None
        )

    # -- generic checks ------------------------------------------------------

    def finite(self, value: Any, path: Path) -> None:
        """TOML allows inf and nan; no setting does."""
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, got {value}")
        if isinstance(value, dict):
            for k, v in value.items():
                self.finite(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.finite(v, (*path, i) if isinstance(v, dict) else path)

    def table(self, path: Path, value: Any = None) -> dict[str, Any]:
        v = self.data.get(str(path[0]), {}) if value is None else value
        if not isinstance(v, dict):
            raise self.fail(path, f"expected a table [{dotted(path)}], got {kind_of(v)}")
        return v

    def keys(
        self,
        table: dict[str, Any],
        path: Path,
        allowed: Iterable[str],
        elsewhere: dict[str, str] | None = None,
    ) -> None:
        allowed = list(allowed)
        for key in table:
            if key in allowed:
                continue
            if elsewhere and key in elsewhere:
                raise self.fail((*path, key), f"not used here ({elsewhere[key]})")
            raise self.fail(
                (*path, key),
                f"unknown field {key!r}{did_you_mean(key, allowed)}; "
                f"valid fields: {', '.join(allowed)}",
            )

    def variant_keys(
        self,
        table: dict[str, Any],
        path: Path,
        common: Iterable[str],
        by_variant: dict[str, tuple[str, ...]],
        variant: str,
        what: str,
    ) -> None:
        """`keys` for a table whose fields depend on one of its values (`variant`, the
        load's shape, the handler's latency): another variant's field is named as such."""
        owners = {
            k: f"only {what} {v!r} uses it; this {path[-1]} is {variant!r}"
            for v, ks in by_variant.items()
            for k in ks
        }
        self.keys(table, path, (*common, *by_variant[variant]), owners)

    def number(
        self,
        t: dict[str, Any],
        key: str,
        path: Path,
        default: Any,
        *,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        integer: bool = False,
        unit: str = "",
    ) -> Any:
        if key not in t:
            return default
        v, p = t[key], (*path, key)
        want = "an integer" if integer else "a number"
        bound = ""

        def shown(x: float) -> str:  # an integer's bound whole: 9223372036854775807, not 9.2e+18
            return str(int(x)) if integer and float(x).is_integer() else f"{x:g}"

        if ge is not None:
            bound = f" >= {shown(ge)}"
        if gt is not None:
            bound = f" > {shown(gt)}"
        if le is not None:
            bound += f" and <= {shown(le)}" if bound else f" <= {shown(le)}"
        expected = f"expected {want}{bound}{unit}"
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or (integer and not isinstance(v, int))
        ):
            raise self.fail(p, f"{expected}, got {kind_of(v)} {v!r}")
        if (
            (ge is not None and v < ge)
            or (gt is not None and v <= gt)
            or (le is not None and v > le)
        ):
            raise self.fail(p, f"{expected}, got {v!r}")
        return v if integer else float(v)

    def string(
        self,
        t: dict[str, Any],
        key: str,
        path: Path,
        default: str | None,
        choices: Iterable[str] | None = None,
        what: str = "",
        limit: int = NAME_LIMIT,
    ) -> Any:
        if key not in t:
            return default
        v, p = t[key], (*path, key)
        if not isinstance(v, str):
            raise self.fail(p, f"expected a string, got {kind_of(v)} {v!r}")
        if len(v) > limit:  # it reaches report lines, the log and the dashboard's panes
            raise self.fail(p, f"expected at most {limit} characters, got {len(v)}")
        if choices is not None:
            choices = list(choices)
            if v not in choices:
                raise self.fail(
                    p,
                    f"unknown {what or key} {v!r}{did_you_mean(v, choices)}; "
                    f"valid: {', '.join(choices)}",
                )
        return v

    def span(self, t: dict[str, Any], key: str, path: Path) -> tuple[float, float] | None:
        if key not in t:
            return None
        v, p = t[key], (*path, key)
        if not (
            isinstance(v, list)
            and len(v) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        ):
            raise self.fail(p, f"expected [start, end] in seconds, got {v!r}")
        a, b = float(v[0]), float(v[1])
        if not 0 <= a < b <= self.duration:
            raise self.fail(
                p,
                f"expected 0 <= start < end <= duration ({self.duration:g} s), got [{a:g}, {b:g}]",
            )
        return a, b
