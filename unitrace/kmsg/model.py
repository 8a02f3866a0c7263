"""What a decoded kernel report is: plain dataclasses, no parsing and no I/O here.

Everything a log could leave out is optional; a value we could not read stays None rather than being
guessed, and a guess (the architecture, a cause) carries the evidence that led to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unitrace.events import Frame

# Context markers the x86 unwinder prints between frames; kept in place in CallTrace.entries.
CONTEXT_MARKERS = ("<IRQ>", "</IRQ>", "<EOI>", "<TASK>", "</TASK>", "<NMI>", "</NMI>", "<SOFTIRQ>",
                   "</SOFTIRQ>", "<#DF>", "</#DF>")


@dataclass(slots=True)
class LogLine:
    """One kernel log line with its transport stripped: syslog/journal/mail prefixes, timestamps."""

    text: str  # the message, leading whitespace removed
    lineno: int  # 1-based line in the input (the first physical line when lines were joined)
    ts: float | None = None  # seconds since boot, from `[   12.345678]` or a /dev/kmsg record
    caller: str = ""  # printk caller id, "T650" / "C2", when the kernel printed one
    indent: int = 0  # leading spaces of the message (the kernel indents continuation fields)


@dataclass(slots=True)
class RegisterDump:
    """Registers printed with a report: RIP/NIP/PC/epc and LR/ra resolved to frames when symbolic."""

    values: dict[str, str] = field(default_factory=dict)  # name -> value as printed ("ffff...", "ftrace_bug+0x3c0/0x424")
    ip: Frame | None = None  # RIP / NIP / pc / epc
    lr: Frame | None = None  # LR / lr / ra
    code: str = ""  # x86 `Code:` bytes as printed, with the faulting byte in <..>
    after_frame: int = -1  # index in the report's last call trace after which it was printed (-1: before)
    user: bool = False  # an x86 `RIP: 0033:` user-mode dump (the syscall's caller)


@dataclass(slots=True)
class CallTrace:
    """A `Call Trace:` block. entries keeps frames and context markers (`<IRQ>`, `</TASK>`) in order."""

    entries: list[Frame | str] = field(default_factory=list)
    header: str = ""  # "Call Trace:", "Call trace:", "Backtrace:", "" when frames came without one

    @property
    def frames(self) -> list[Frame]:
        return [e for e in self.entries if isinstance(e, Frame)]


@dataclass(slots=True)
class Bytes:
    """Instruction bytes ftrace printed (`actual:`/`expected:`), in memory order."""

    data: bytes
    text: str  # as printed
    sign_extended: bool = False  # old kernels printed a signed char with %02x: `ffffffe8`
    fault: bool = False  # `[FAULT] addr`: the kernel could not even read the site


@dataclass(slots=True)
class Instruction:
    address: int | None  # None when the site address is unknown (stripped or hashed)
    offset: int  # from the site
    size: int
    mnemonic: str
    op_str: str
    target: int | None = None  # absolute branch/call target, when the site address is known
    target_offset: int | None = None  # target relative to the site, when only that is known
    target_symbol: str = ""  # from kallsyms, when the log comes from this machine

    def __str__(self) -> str:
        return f"{self.mnemonic} {self.op_str}".strip()


@dataclass(slots=True)
class FlagBit:
    bit: int
    name: str
    meaning: str


@dataclass(slots=True)
class RecordFlags:
    raw: int
    count: int  # how many ftrace_ops want this site (the low bits)
    bits: list[FlagBit]
    layout: str  # which kernel's layout decoded it, e.g. "v6.4+"
    unknown_bits: int = 0  # set bits the layout does not name (a layout we do not know)
    markers: str = ""  # what the kernel printed after the count, e.g. " R"


@dataclass(slots=True)
class Cause:
    key: str
    title: str
    explanation: str
    evidence: list[str]
    confidence: str  # "high", "medium", "low"
    score: int = 0


@dataclass(slots=True)
class FtraceBug:
    variant: str = ""  # "failed to modify", "faulted on modifying", "faulted on writing", "faulted on unknown error", ...
    errno: str = ""  # the error ftrace_bug() was given, implied by the variant (-EINVAL, -EFAULT, -EPERM)
    address: int | None = None
    address_text: str = ""  # as printed inside [<...>]
    address_state: str = "unknown"  # "real", "hashed", "zeroed", "stripped", "unknown"
    symbol: str = ""
    offset: int | None = None
    size: int | None = None
    module: str = ""
    actual: Bytes | None = None
    expected: Bytes | None = None
    bug_type: str = ""  # "init", "nop", "call", "update"
    bug_type_text: str = ""
    flags: RecordFlags | None = None
    tramps: list[str] = field(default_factory=list)  # `tramp: %pS (%pS)` entries
    expected_tramp: int | None = None
    expected_tramp_symbol: str = ""
    arch_notes: list[str] = field(default_factory=list)  # arch code's own complaint before the splat
    actual_insns: list[Instruction] = field(default_factory=list)
    expected_insns: list[Instruction] = field(default_factory=list)


@dataclass(slots=True)
class ArchGuess:
    name: str = ""  # "x86_64", "i386", "arm64", "arm", "thumb2" is arm with thumb=True, "ppc64le", "ppc64", "riscv64"
    thumb: bool = False
    evidence: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    kind: str  # "ftrace_bug", "warning", "bug", "oops", "panic", "hung_task", "stack"
    title: str  # the headline line as printed
    first_line: int = 0
    last_line: int = 0
    ts: float | None = None
    cpu: int | None = None
    pid: int | None = None
    comm: str = ""
    location: str = ""  # "kernel/trace/ftrace.c:2180"
    function: str = ""  # where the WARN/BUG fired, "ftrace_bug+0x3c0/0x424"
    kernel_version: str = ""
    build: str = ""  # "#860"
    tainted: bool | None = None
    taint_letters: str = ""
    taint_words: list[str] = field(default_factory=list)
    hardware: str = ""
    modules: list[str] = field(default_factory=list)
    arch: ArchGuess = field(default_factory=ArchGuess)
    registers: list[RegisterDump] = field(default_factory=list)
    traces: list[CallTrace] = field(default_factory=list)
    ftrace: FtraceBug | None = None
    causes: list[Cause] = field(default_factory=list)
    truncated: bool = False  # the block ended before its end marker (cut short)
    notes: list[str] = field(default_factory=list)  # what we noticed but could not use
    lines: list[str] = field(default_factory=list)  # the normalised lines the report was read from
