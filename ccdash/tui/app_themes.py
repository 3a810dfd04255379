"""The dashboard's themes as Textual sees them: only the ccdash ones are offered, and
the current one is looked up when it or the set of themes changes, not per line drawn."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.theme import Theme


class ThemedApp(App[Any]):
    """An App whose theme picker offers `ccdash_themes` only and whose `current_theme`
    is kept between changes (Textual asks for it for every line it draws, through
    `ansi_theme`, and each ask filtered every registered theme into a fresh dict)."""

    ccdash_themes: dict[str, Theme]
    _theme_kept: tuple[tuple[object, ...], Theme] | None = None
    _themes_version = 0

    @property
    def available_themes(self) -> dict[str, Theme]:
        """Only the ccdash themes: what the palette's theme picker offers is what
        `--theme` and `t` accept."""
        themes = super().available_themes
        ours = getattr(self, "ccdash_themes", None)  # None while App.__init__ runs
        if ours is None:
            return themes
        # The current one too: Textual's start-up theme stays valid until on_mount.
        return {n: t for n, t in themes.items() if n in ours or n == self.theme}

    @property
    def current_theme(self) -> Theme:
        """The theme in use, looked up again only when the theme or the set changed."""
        key = (self.theme, self._themes_version, id(getattr(self, "ccdash_themes", None)))
        kept = self._theme_kept
        if kept is None or kept[0] != key:
            kept = self._theme_kept = (key, super().current_theme)
        return kept[1]

    def register_theme(self, theme: Theme) -> None:
        """Register `theme` (a new set: the current theme is looked up again)."""
        super().register_theme(theme)
        self._themes_version += 1

    def unregister_theme(self, theme_name: str) -> None:
        """Unregister `theme_name` (a new set: the current theme is looked up again)."""
        super().unregister_theme(theme_name)
        self._themes_version += 1
