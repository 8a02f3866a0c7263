"""LogLines -> blocks: which lines belong to which report.

A report starts at a headline (`WARNING:`, `BUG:`, `Oops`, `Kernel panic`, `------------[ ftrace bug ]`,
`ftrace failed to modify`, a bare `Call Trace:`) and ends at `---[ end trace ... ]---`, at the next
headline, or after a run of lines that are plainly not part of it (a report cut short). Lines from
another printk caller (`[  T651]` while the report is `[  T650]`) are left out, so reports printed
by two CPUs at once come apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from unitrace.kmsg.model import CONTEXT_MARKERS, LogLine

_CUT = re.compile(r"^-{4,}\[ cut here \]-{4,}")
_FTRACE_HEADER = re.compile(r"^-{4,}\[ ftrace bug \]-{4,}")
_END = re.compile(r"^-{2,}\[ end (?:trace|Kernel panic)")
_WARNING = re.compile(r"^WARNING:")
_BUG = re.compile(r"^(?:kernel BUG at |BUG: |BUG [\w-]+ \()")
_OOPS = re.compile(r"^(?:Oops(?: - \w+)?[:\s]|Internal error: |Unable to handle kernel |general protection fault"
                   r"|stack segment: |invalid opcode: |double fault: )")
_PANIC = re.compile(r"^Kernel panic - not syncing")
_HUNG = re.compile(r"^(?:INFO: task .* blocked for more than|INFO: rcu_\w+ (?:self-)?detected|"
                   r"rcu: INFO: rcu_\w+ (?:self-)?detected|watchdog: BUG: soft lockup)")
_FTRACE_DETAIL = re.compile(r"^ftrace (?:failed to modify|faulted on )")
_ARCH_NOTE = re.compile(r"^ftrace-\w+:|\bexpected \(.*\) but got \(")
_TRACE_HEADER = re.compile(r"^(?:Call Trace|Call trace|Backtrace|Stack backtrace)\s*:\s*$")

FRAME_LINE = re.compile(
    r"^(?:\[<[0-9a-fA-F]*>\]|\[\]|\[[0-9a-f]{8,16}\] \[[0-9a-f]{8,16}\]|\?\s|"
    r"[^\s+\[\]()]+\+0x[0-9a-f]+/0x[0-9a-f]+|0x[0-9a-f]+\s*$)")
_RELEVANT = re.compile(
    r"^(?:Modules linked in|CPU: |Pid: |Hardware name|Workqueue|Stopper|RIP|EIP|Code:|R[A-Z0-9]{1,2}:|E[A-Z]{2}:"
    r"|FS:|CS:|CR2|DR[0-9]|PKRU|pc ?:|lr ?:|sp ?:|x\d+ ?:|pstate|PC is at|LR is at|psr|NIP|LR|MSR|REGS|CTR"
    r"|GPR|CFAR|IRQMASK|Instruction dump|epc|ra ?:|gp ?:|[ast]\d+ ?:|status:|actual:|expected|ftrace|"
    r"Initializing ftrace|Setting ftrace|Updating ftrace|\(\d+\)|tramp|r\d+:|irq event stamp|hardirqs|softirqs|"
    r"Tainted|Kernel panic|Call Trace|Call trace|Backtrace|Stack|Preemption|Mem abort|ESR|EC =|FAR|"
    r"Internal error|Process |Unable to handle|PGD|PUD|PMD|PTE|Oops|note:|Fixing recursive|Dumping ftrace"
    r"|<\w+>|</\w+>|\.\.\.|random:)")

MAX_GAP = 12  # unrelated lines tolerated inside a report before it counts as cut short
MAX_LINES = 2000


@dataclass(slots=True)
class Block:
    kind: str  # "pending" (a cut-here line waiting for its headline), or a Report kind
    title: int  # index into the line list
    members: list[int] = field(default_factory=list)
    ended: bool = False
    has_warning: bool = False
    gap: int = 0
    caller: str = ""

    @property
    def last(self) -> int:
        return self.members[-1]


def classify(text: str) -> str:
    if not text:
        return ""
    head = text[:1]
    if head == "-":
        if _END.match(text):
            return "end"
        if _CUT.match(text):
            return "cut"
        if _FTRACE_HEADER.match(text):
            return "ftrace_header"
        return ""
    if _WARNING.match(text):
        return "warning"
    if _HUNG.match(text):
        return "hung_task"
    if _BUG.match(text):
        return "bug"
    if _OOPS.match(text):
        return "oops"
    if _PANIC.match(text):
        return "panic"
    if _FTRACE_DETAIL.match(text):
        return "ftrace_detail"
    if _TRACE_HEADER.match(text):
        return "trace_header"
    return ""


def is_relevant(text: str) -> bool:
    return bool(FRAME_LINE.match(text) or _RELEVANT.match(text) or text in CONTEXT_MARKERS)


def segment(lines: list[LogLine]) -> list[Block]:
    """Blocks in input order. With printk caller ids, each task/CPU is segmented on its own (lines
    without an id go with every group), so reports printed at the same time come apart."""
    callers = sorted({ln.caller for ln in lines if ln.caller})
    if len(callers) < 2:
        return _segment(lines, list(range(len(lines))))
    out: list[Block] = []
    for caller in callers:
        out += _segment(lines, [i for i, ln in enumerate(lines) if ln.caller in (caller, "")])
    seen: set[tuple[int, ...]] = set()
    unique = []
    for b in sorted(out, key=lambda b: b.members[0]):
        if tuple(b.members) not in seen:  # a caller-less report is found by every group
            seen.add(tuple(b.members))
            unique.append(b)
    return unique


def _segment(lines: list[LogLine], order: list[int]) -> list[Block]:
    blocks: list[Block] = []
    cur: Block | None = None

    def close() -> None:
        nonlocal cur
        if cur is not None and cur.kind != "pending":
            # a report cut short ends at its last line that belonged to it
            while cur.gap and len(cur.members) > 1 and not is_relevant(lines[cur.members[-1]].text):
                cur.members.pop()
                cur.gap -= 1
            blocks.append(cur)
        cur = None

    def start(kind: str, i: int) -> None:
        nonlocal cur
        close()
        cur = Block(kind, i, [i], caller=lines[i].caller)

    def reopen(i: int, near: int) -> bool:
        """Attach a late line (the old ftrace_bug() printed details after the WARNING) to the last report."""
        nonlocal cur
        if cur is None and blocks and i - blocks[-1].last <= near:
            cur = blocks.pop()
            cur.members.append(i)
            cur.gap = 0
            return True
        return False

    for i in order:
        line = lines[i]
        text = line.text
        c = classify(text)
        if c == "end":
            if cur is not None:
                cur.members.append(i)
                cur.ended = True
                close()
        elif c == "cut":
            if cur is not None and cur.kind == "ftrace_bug" and not cur.has_warning:
                cur.members.append(i)  # v5.8+: the ftrace details come first, then the WARNING
            else:
                start("pending", i)
        elif c == "ftrace_header":
            start("ftrace_bug", i)
            assert cur is not None
            claimed = blocks[-1].last if blocks else -1
            for j in [k for k in order if max(i - 4, claimed) < k < i][::-1]:
                if _ARCH_NOTE.search(lines[j].text):
                    cur.members.insert(0, j)  # the arch code's complaint printed just before the splat
        elif c in ("warning", "bug", "oops", "hung_task", "panic"):
            if cur is not None and cur.kind == "pending":
                cur.kind, cur.title = c, i
                cur.members.append(i)
                cur.has_warning = True
            elif cur is not None and cur.kind == "ftrace_bug" and not cur.has_warning and c == "warning":
                cur.members.append(i)
                cur.has_warning = True
            elif cur is not None and (c == "panic" or (c == "oops" and cur.kind == "bug" and i - cur.title <= 4)):
                cur.members.append(i)  # "BUG: unable to handle" + "Oops: 0002"; panic_on_warn
            elif c == "panic" and reopen(i, 4):
                pass
            else:
                start(c, i)
                assert cur is not None
                cur.has_warning = True
        elif c == "ftrace_detail":
            if cur is not None and (cur.kind == "ftrace_bug"
                                    or (cur.kind == "warning" and "ftrace_bug" in lines[cur.title].text)):
                cur.kind = "ftrace_bug"
                cur.members.append(i)
            elif cur is None and blocks and "ftrace_bug" in lines[blocks[-1].title].text and reopen(i, 6):
                assert cur is not None
                cur.kind = "ftrace_bug"
            else:
                start("ftrace_bug", i)
        elif c == "trace_header":
            if cur is None:
                start("stack", i)
            else:
                cur.members.append(i)
                cur.gap = 0
        elif cur is not None:
            cur.members.append(i)
            if not text:
                continue
            cur.gap = 0 if is_relevant(text) else cur.gap + 1
            if cur.gap > MAX_GAP or len(cur.members) > MAX_LINES:
                close()
    close()
    return blocks
