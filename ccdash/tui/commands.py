"""The command palette's dashboard commands: each shows its key, and each is found by
its title, its key or the words an operator would use ("failover", "dlq", "retry")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from ccdash.tui.key_spec import Key, key_label
from ccdash.tui.keys import KEYS


def _runner(app: Any, action: str) -> Any:
    async def run() -> None:
        await app.run_action(action)

    return run


def _display(k: Key, title: Content | None = None) -> Content:
    """The title (highlighted where it matched), then the key that runs it."""
    return Content.assemble(title or Content(k.title), (f"  {key_label(k)}", "bold $accent"))


def word_score(query: str, k: Key) -> float:
    """How well every word of the query names this command (0: not at all): a word
    that starts a word of the title, the key or the command's words counts."""
    words = query.casefold().split()
    if not words:
        return 0.0
    vocabulary = f"{k.title} {k.words} {k.action}".casefold().replace(":", " ").split()
    hits = sum(1 for w in words if any(v.startswith(w) for v in vocabulary))
    return 0.0 if hits < len(words) else 0.5 + 0.4 * len(words) / (len(vocabulary) or 1)


class KeyCommands(Provider):
    """The dashboard's keys as palette commands (the app's PALETTE_KEYS)."""

    def _keys(self) -> Sequence[Key]:
        return tuple(getattr(self.app, "PALETTE_KEYS", KEYS))

    async def discover(self) -> Hits:
        """Every command, with its key, in the order of the help screen."""
        for k in self._keys():
            yield DiscoveryHit(_display(k), _runner(self.app, k.action), help=k.help)

    async def search(self, query: str) -> Hits:
        """Fuzzy on the title, or every typed word found among the command's words."""
        matcher = self.matcher(query)
        for k in self._keys():
            fuzzy = matcher.match(f"{k.title} {key_label(k)}")
            score = max(fuzzy, word_score(query, k))
            if score > 0:
                title = matcher.highlight(k.title) if fuzzy >= score else None
                yield Hit(
                    score,
                    _display(k, title),
                    _runner(self.app, k.action),
                    text=k.title,
                    help=k.help,
                )


__all__ = ["KeyCommands", "word_score"]
