"""Reading scenario files: TOML in, a validated `Scenario` out, or a ScenarioError
naming the file, the line, the field and what was expected."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path as FsPath

from ccdash.hints import closest
from ccdash.scenario.errors import ScenarioError
from ccdash.scenario.model import Scenario
from ccdash.scenario.reader import ScenarioReader

BUILTIN_DIR = FsPath(__file__).resolve().parent / "builtin"
MAX_DIGITS = 4300  # Python's limit on int() of a decimal string
MAX_FILE = 1024 * 1024  # bytes; the built-in scenarios are about 2 KiB


def builtin_names() -> list[str]:
    """Names of the scenarios shipped inside the package (`default`, `failover-drill`, ...)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def resolve_path(path: str | FsPath | None) -> FsPath:
    """A scenario path; None is the default scenario, a bare name a built-in one."""
    if path is None:
        return BUILTIN_DIR / "default.toml"
    p = FsPath(path)
    if (
        not p.exists()
        and p.parent == FsPath()
        and (BUILTIN_DIR / f"{p.stem}.toml").exists()
        and p.suffix in ("", ".toml")
    ):
        return BUILTIN_DIR / f"{p.stem}.toml"
    return p


def load_scenario(path: str | FsPath | None = None) -> Scenario:
    """Read and validate a scenario file (None: the default demo scenario)."""
    if path is not None and not str(path).strip():  # `--scenario "$UNSET"`: no file named
        raise ScenarioError(
            f"expected a .toml scenario file or a built-in name "
            f"({', '.join(builtin_names())}), got {str(path)!r}",
            field="--scenario",
        )
    p = resolve_path(path)
    shown = str(path) if path is not None else f"{p.name} (built in)"
    if p.is_dir():
        raise ScenarioError("is a directory, expected a .toml scenario file", file=shown)
    if p.exists() and not p.is_file():  # /dev/zero, a FIFO: reading would never end
        raise ScenarioError("not a regular file, expected a .toml scenario file", file=shown)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            raise ScenarioError(
                f"larger than {MAX_FILE // 1024} KiB; a scenario is a short TOML file", file=shown
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        close = closest(p.stem, builtin_names())
        hint = f" (did you mean the built-in scenario {close!r}?)" if close else ""
        raise ScenarioError(f"no such file{hint}", file=shown) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read it: {exc.strerror or exc}", file=shown) from None
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text (is it a TOML file?)", file=shown) from None
    return parse_scenario(text, file=shown, default_name=p.stem)


def parse_scenario(
    text: str, *, file: str = "<scenario>", default_name: str = "scenario"
) -> Scenario:
    """Validate TOML text as a scenario."""
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    try:
        data = tomllib.loads(text)
        return ScenarioReader(data, text, file).scenario(default_name)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        raise ScenarioError(f"invalid TOML: {msg}", file=file, line=line) from None
    except RecursionError:
        raise ScenarioError("invalid TOML: arrays or tables nested too deeply", file=file) from None
    except ValueError as exc:  # an integer too long for int() (more than 4300 digits)
        if isinstance(exc, ScenarioError):
            raise
        m = re.search(r"[0-9_]{" + str(MAX_DIGITS) + ",}", text)
        line = text.count("\n", 0, m.start()) + 1 if m else None
        raise ScenarioError(
            f"invalid TOML: a number with more than {MAX_DIGITS} digits", file=file, line=line
        ) from None
