"""The process tree of the traced command, built from fork, exec and exit events as they arrive."""

from __future__ import annotations

from dataclasses import dataclass, field

from unitrace.events import Event, EventKind


@dataclass
class ProcessNode:
    pid: int
    parent: int | None
    comm: str = ""
    exe: str = ""
    argv: tuple[str, ...] = ()
    children: list[int] = field(default_factory=list)
    exit_status: int | None = None
    killed_by: str = ""
    events: int = 0

    @property
    def alive(self) -> bool:
        return self.exit_status is None and not self.killed_by

    def label(self) -> str:
        name = self.comm or "?"
        text = f"{name} [{self.pid}]"
        if self.argv:
            text += "  " + " ".join(self.argv)
        elif self.exe:
            text += "  " + self.exe
        if self.killed_by:
            text += f"  killed by {self.killed_by}"
        elif self.exit_status is not None:
            text += f"  exited {self.exit_status}"
        return text


class ProcessTable:
    def __init__(self) -> None:
        self.nodes: dict[int, ProcessNode] = {}
        self.roots: list[int] = []
        self.version = 0  # bumped on every structural change, so the tree widget redraws only then

    def _node(self, pid: int, comm: str = "", parent: int | None = None) -> ProcessNode:
        node = self.nodes.get(pid)
        if node is None:
            node = self.nodes[pid] = ProcessNode(pid, parent, comm)
            if parent is None or parent not in self.nodes:
                self.roots.append(pid)
            else:
                self.nodes[parent].children.append(pid)
            self.version += 1
        return node

    def add(self, batch: list[Event]) -> None:
        for ev in batch:
            node = self.nodes.get(ev.pid) or self._node(ev.pid, ev.comm)
            node.events += 1
            if ev.kind is EventKind.FORK:
                child = ev.fields.get("child")
                if isinstance(child, int) and child not in self.nodes:
                    self._node(child, ev.comm, ev.pid)
            elif ev.kind is EventKind.EXEC:
                node.comm = ev.comm or node.comm
                node.exe = str(ev.fields.get("filename", node.exe))
                argv = ev.fields.get("argv")
                if isinstance(argv, (list, tuple)):
                    node.argv = tuple(str(a) for a in argv)
                self.version += 1
            elif ev.kind is EventKind.EXIT:
                sig = ev.fields.get("signal")
                if sig:
                    node.killed_by = str(sig)
                else:
                    node.exit_status = ev.ret if ev.ret is not None else 0
                self.version += 1
            elif ev.kind is EventKind.SYSCALL and ev.name == "execve" and not ev.errno and not node.exe:
                node.exe = str(ev.fields.get("filename", ""))
                self.version += 1
