"""How the engine tells the outside world what it is doing (the CLI renders it; tests ignore it)."""

from __future__ import annotations

from typing import Protocol


class Events(Protocol):
    def message(self, text: str) -> None: ...

    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, info: dict | None = None) -> None: ...

    def end_phase(self) -> None: ...


class Silent:
    """Events that go nowhere."""

    def message(self, text: str) -> None:
        pass

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, info: dict | None = None) -> None:
        pass

    def end_phase(self) -> None:
        pass
