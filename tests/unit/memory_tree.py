"""An image tree as the planner sees it (stage0/image_tree.py's protocol), held in memory."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MemoryTree:
    """An image tree as the planner sees it, held in memory."""

    executables: set[str] = field(default_factory=lambda: {"/bin/sh", "/bin/server", "/usr/bin/tool"})
    accounts: dict[tuple[str, str], int] = field(
        default_factory=lambda: {("passwd", "web"): 1000, ("group", "web"): 2000, ("group", "staff"): 50}
    )
    owners: dict[str, tuple[int, int]] = field(default_factory=lambda: {"/srv/data": (33, 34)})
    rootfs: str = "/var/lib/nspod/trees/x/rootfs"
    lower: tuple[str, ...] = ()

    def is_executable(self, path: str) -> bool:
        return path in self.executables

    def account(self, table: str, name: str) -> int | None:
        return self.accounts.get((table, name))

    def owner(self, path: str) -> tuple[int, int] | None:
        return self.owners.get(path)

    def primary_group(self, user: str) -> int | None:
        return {"web": 1000, "1000": 1000}.get(user)

    def member_of(self, user: str) -> tuple[int, ...]:
        return (50000,) if user == "web" else ()
