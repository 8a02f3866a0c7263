"""Reading one report's lines: headline fields, Call Traces with their context markers, registers."""

from __future__ import annotations

import re

from unitrace.events import Frame
from unitrace.kmsg.model import CONTEXT_MARKERS, CallTrace, LogLine, RegisterDump, Report
from unitrace.kmsg.tables import taint_words

SYM = r"[^\s+\[\]()<>]+"
SYMOFF = re.compile(rf"^(?P<sym>{SYM})\+0x(?P<off>[0-9a-fA-F]+)(?:/0x(?P<size>[0-9a-fA-F]+))?"
                    r"(?:\s+\[(?P<mod>[^\]\s]+)\])?")

_WARN_AT = re.compile(r"\bat\s+(?P<file>\S+?):(?P<line>\d+)\s*(?P<func>\S+?\+0x[0-9a-f]+/0x[0-9a-f]+)?(?:\(\))?"
                      r"(?:\s|,|$)")
_WARN_NEW = re.compile(r"^WARNING:\s+(?P<file>\S+?):(?P<line>\d+)\s+at\s+(?P<func>\S+?)(?:,|\s|$)")
_BUG_AT = re.compile(r"kernel BUG at (?P<file>\S+?):(?P<line>\d+)!")
_CPU_PID = re.compile(r"\bCPU:?\s*#?(?P<cpu>\d+)\b.*?\bPID:\s*(?P<pid>\d+)")
_CPU_NEW = re.compile(r"CPU#(?P<cpu>\d+):\s*(?P<comm>[^/\s]+)/(?P<pid>\d+)")
_COMM = re.compile(r"\b[Cc]omm:\s*(?P<comm>\S+)")
_PID_OLD = re.compile(r"^Pid:\s*(?P<pid>\d+),\s*comm:\s*(?P<comm>\S+)")
_TAINT = re.compile(r"\b(?:Not tainted|Tainted:\s(?P<letters>[A-Z ]*?))\s+(?P<ver>\d+\.\d+[\w.+~-]*)(?:\s+(?P<build>#\S+))?")
_TAINT_LIST = re.compile(r"^Tainted:\s+((?:\[[A-Z]\]=\w+(?:,\s*)?)+)")
_LINUX_VERSION = re.compile(r"\bLinux version (?P<ver>\d+\.\d+[\w.+~-]*)")
_HARDWARE = re.compile(r"^Hardware name:\s*(?P<hw>.+)$")
_MODULES = re.compile(r"^Modules linked in:\s*(?P<mods>.*)$")

_FRAME_BRACKET = re.compile(r"^\[(?:<(?P<addr>[0-9a-fA-F]*)>)?\]\s*(?P<rest>.*)$")
_FRAME_PPC = re.compile(r"^\[(?P<sp>[0-9a-f]{8,16})\]\s+\[(?P<addr>[0-9a-f]{8,16})\]\s+(?P<rest>.+)$")
_FRAME_ARM = re.compile(r"^\[<(?P<a1>[0-9a-f]+)>\]\s+\((?P<s1>[^)]*)\)\s+from\s+\[<(?P<a2>[0-9a-f]+)>\]\s+"
                        r"\((?P<s2>[^)]*)\)")
_FRAME_REST = re.compile(r"^(?P<q>\?\s+)?(?:(?P<symoff>" + SYM + r"\+0x[0-9a-fA-F]+(?:/0x[0-9a-fA-F]+)?"
                         r"(?:\s+\[[^\]\s]+\])?)|0x(?P<addr>[0-9a-fA-F]+)|(?P<bare>" + SYM + r"))"
                         r"\s*(?P<unrel>\(unreliable\))?\s*$")
_TRACE_HEADER = re.compile(r"^(?:Call Trace|Call trace|Backtrace|Stack backtrace)\s*:\s*$")
_END_OF_TRACE = re.compile(r"^(?:-{2,}\[ end |Modules linked in|Kernel panic|Code:|Instruction dump|"
                           r"irq event stamp|Dumping ftrace|---\[)")

_REG_PAIR = re.compile(r"(?<![\w/])(?P<name>[A-Za-z][A-Za-z0-9_]{0,7})\s*:\s*(?:[0-9a-f]{4}:)?"
                       r"(?P<val>[0-9a-fA-F]{4,16})\b")
_RIP = re.compile(r"^(?P<name>RIP|EIP):\s*(?:(?P<cs>[0-9a-f]{4}):)?(?:\[<(?P<addr>[0-9a-f]+)>\]\s*)?"
                  r"(?:\[<[0-9a-f]+>\]\s*)?(?P<rest>\S+)?")
_ARM64_PCLR = re.compile(r"^(?P<name>pc|lr)\s*:\s*(?:\[<(?P<addr>[0-9a-f]+)>\]\s*)?(?P<rest>\S+)?")
_ARM_IS_AT = re.compile(r"^(?P<name>PC|LR) is at (?P<rest>\S+)")
_PPC_NIP = re.compile(r"^(?P<name>NIP|LR)\s+\[(?P<addr>[0-9a-f]+)\]\s+(?P<rest>\S+)")
_RISCV = re.compile(r"^(?P<name>epc|ra)\s*:\s*(?P<rest>\S+)$")
_CODE = re.compile(r"^Code:\s*(?P<code>.+)$")


def parse_hex(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def frame_from_text(text: str, address: int | None = None) -> Frame | None:
    """`? foo+0x1a/0x40 [mod]`, `0xffffffffc14f3000`, `foo` -> Frame; None when it is not a frame."""
    m = _FRAME_REST.match(text.strip())
    if not m:
        return None
    reliable = not m.group("q") and not m.group("unrel")
    if m.group("symoff"):
        s = SYMOFF.match(m.group("symoff"))
        assert s is not None
        return Frame(address or 0, s.group("sym"), int(s.group("off"), 16), s.group("mod") or "",
                     reliable=reliable, how="kernel")
    if m.group("addr"):
        return Frame(parse_hex(m.group("addr")) or 0, reliable=reliable, how="kernel")
    if address is not None and m.group("bare"):
        return Frame(address, m.group("bare"), reliable=reliable, how="kernel")
    return None


def parse_frame_line(text: str, in_trace: bool) -> list[Frame]:
    """The frames on one line. Bare `foo+0x1/0x2` lines count only inside a trace."""
    m = _FRAME_ARM.match(text)
    if m:
        first = frame_from_text(m.group("s1"), parse_hex(m.group("a1")))
        second = frame_from_text(m.group("s2"), parse_hex(m.group("a2")))
        return [f for f in (first, second) if f is not None]
    m = _FRAME_PPC.match(text)
    if m:
        f = frame_from_text(m.group("rest"), parse_hex(m.group("addr")))
        return [f] if f else []
    m = _FRAME_BRACKET.match(text)
    if m and m.group("rest"):
        addr = parse_hex(m.group("addr"))
        f = frame_from_text(m.group("rest"), addr)
        if f is not None and m.group("addr") is not None and addr is not None:
            f.address = addr
        return [f] if f else []
    if in_trace:
        f = frame_from_text(text)
        if f is not None and (f.symbol or f.address):
            if f.symbol and not f.offset and "+0x" not in text:
                return []  # a lone word is not a frame
            return [f]
    return []


def _arm_chain(frames_by_line: list[list[Frame]]) -> list[Frame]:
    """ARM prints `[<a>] (f) from [<b>] (g+off)`: the first left side, then every right side."""
    out: list[Frame] = []
    for pair in frames_by_line:
        if not out and pair:
            out.append(pair[0])
        if len(pair) == 2:
            out.append(pair[1])
    return out


def read_traces(lines: list[LogLine]) -> tuple[list[CallTrace], list[RegisterDump]]:
    traces: list[CallTrace] = []
    dumps: list[RegisterDump] = []
    cur: CallTrace | None = None
    dump: RegisterDump | None = None
    misses = 0
    arm_pairs: list[list[Frame]] = []

    def finish_arm() -> None:
        nonlocal arm_pairs
        if arm_pairs and cur is not None:
            cur.entries.extend(_arm_chain(arm_pairs))
        arm_pairs = []

    for line in lines:
        text = line.text
        if _TRACE_HEADER.match(text):
            finish_arm()
            cur = CallTrace(header=text)
            traces.append(cur)
            misses = 0
            dump = None
            continue
        if text in CONTEXT_MARKERS:
            if cur is None:
                cur = CallTrace()
                traces.append(cur)
            cur.entries.append(text)
            misses = 0
            continue
        reg = _register_line(text)
        if reg is not None:
            name, values, frame = reg
            starts_dump = name in ("RIP", "EIP", "pc", "PC", "NIP", "epc") and frame is not None
            if dump is not None and starts_dump and dump.ip is not None and frame is not None:
                merged = _merge_frames(dump.ip, frame)
                if merged is not None:
                    dump.ip, frame = merged, None  # the same register printed symbolic and numeric
            if dump is None or (starts_dump and frame is not None and dump.ip is not None):
                dump = RegisterDump()
                dumps.append(dump)
                dump.after_frame = len(cur.frames) - 1 if cur is not None else -1
            if name in ("RIP", "EIP") and values.get("_cs") == "0033":
                dump.user = True
            values.pop("_cs", None)
            dump.values.update(values)
            lr_value = values.get("LR") or values.get("ra")
            if frame is None and dump.lr is not None and lr_value and not dump.lr.address:
                dump.lr.address = parse_hex(lr_value) or 0
            if frame is not None:
                if name in ("LR", "lr", "ra"):
                    dump.lr = dump.lr or frame
                else:
                    dump.ip = dump.ip or frame
            misses = 0
            continue
        m = _CODE.match(text)
        if m:
            if dump is None:
                dump = RegisterDump()
                dumps.append(dump)
            dump.code = m.group("code").strip()
            continue
        if cur is not None and _END_OF_TRACE.match(text):
            finish_arm()
            cur = None
            continue
        frames = parse_frame_line(text, in_trace=cur is not None)
        if frames:
            if cur is None:
                cur = CallTrace()
                traces.append(cur)
            if _FRAME_ARM.match(text):
                arm_pairs.append(frames)
            else:
                finish_arm()
                cur.entries.extend(frames)
            misses = 0
            continue
        if cur is not None and text:
            misses += 1
            if misses > 4:
                finish_arm()
                cur = None
    finish_arm()
    return [t for t in traces if t.frames], dumps


def _merge_frames(old: Frame, new: Frame) -> Frame | None:
    """One register printed twice (`NIP: c000...` then `NIP [c000...] sym+off`): combine, else None."""
    if old.address and new.address and old.address != new.address:
        return None
    if bool(old.symbol) == bool(new.symbol) and old.symbol != new.symbol:
        return None
    symbolic = old if old.symbol else new
    return Frame(old.address or new.address, symbolic.symbol, symbolic.offset, symbolic.module,
                 reliable=old.reliable and new.reliable, how="kernel")


def _register_line(text: str) -> tuple[str, dict[str, str], Frame | None] | None:
    for rx in (_RIP, _ARM64_PCLR, _ARM_IS_AT, _PPC_NIP, _RISCV):
        m = rx.match(text)
        if not m:
            continue
        name = m.group("name")
        rest = m.group("rest") or ""
        addr = parse_hex(m.groupdict().get("addr"))
        frame = frame_from_text(rest, addr) if rest and "+0x" in rest else None
        if frame is None and rest and rx is not _ARM_IS_AT and re.fullmatch(r"0x[0-9a-f]{1,16}|[0-9a-f]{8,16}", rest):
            frame = Frame(int(rest.removeprefix("0x"), 16), how="kernel")
            pairs = {p.group("name"): p.group("val") for p in _REG_PAIR.finditer(text)}
            if len(pairs) > 1:
                return name, pairs, frame
        values = {name: rest}
        if m.groupdict().get("cs"):
            values["_cs"] = m.group("cs")
        return name, values, frame
    pairs = list(_REG_PAIR.finditer(text))
    if len(pairs) >= 2 or (pairs and pairs[0].start() == 0 and pairs[0].group("name") in ("sp", "pstate", "CR2")):
        covered = sum(p.end() - p.start() for p in pairs)
        if covered * 2 >= len(text.replace(" ", "")) or len(pairs) >= 3:
            values = {p.group("name"): p.group("val") for p in pairs}
            name = pairs[0].group("name")
            frame = None
            if name in ("NIP", "epc") and pairs[0].start() == 0:
                frame = Frame(int(pairs[0].group("val"), 16), how="kernel")
            return name, values, frame
    return None


def read_header(report: Report, lines: list[LogLine]) -> None:
    """WARNING location, CPU/PID/comm, taint and version, hardware, modules."""
    for line in lines:
        text = line.text
        if not report.location:
            m = _WARN_NEW.match(text) if text.startswith("WARNING:") else None
            m = m or (_WARN_AT.search(text) if text.startswith("WARNING:") else None) or _BUG_AT.search(text)
            if m:
                report.location = f"{m.group('file')}:{m.group('line')}"
                func = m.groupdict().get("func")
                if func:
                    report.function = func.rstrip(",").removesuffix("()")
        if report.cpu is None:
            m = _CPU_NEW.search(text)
            if m:
                report.cpu, report.pid, report.comm = int(m.group("cpu")), int(m.group("pid")), m.group("comm")
            else:
                m = _CPU_PID.search(text)
                if m and (text.startswith(("CPU", "WARNING", "Pid")) or "PID:" in text):
                    report.cpu, report.pid = int(m.group("cpu")), int(m.group("pid"))
        if report.pid is None:
            m = _PID_OLD.match(text)
            if m:
                report.pid, report.comm = int(m.group("pid")), m.group("comm")
        if not report.comm:
            m = _COMM.search(text)
            if m and ("PID" in text or "Pid" in text):
                report.comm = m.group("comm")
        if not report.kernel_version:
            m = _TAINT.search(text)
            if m and ("PID" in text or "Pid" in text or "Comm" in text or "comm" in text):
                report.kernel_version = m.group("ver")
                report.build = m.group("build") or ""
                letters = m.group("letters")
                report.tainted = letters is not None
                if letters:
                    # positional flags ("G           OE"): one letter per taint bit, in bit order
                    report.taint_letters = " ".join(ch for ch in letters if ch.isalpha())
                    report.taint_words = taint_words(letters)
        m = _TAINT_LIST.match(text)
        if m:
            letters = "".join(re.findall(r"\[([A-Z])\]", m.group(1)))
            report.tainted = True
            report.taint_letters = " ".join(letters)
            report.taint_words = taint_words(letters)
        if not report.kernel_version:
            m = _LINUX_VERSION.search(text)
            if m:
                report.kernel_version = m.group("ver")
        if not report.hardware:
            m = _HARDWARE.match(text)
            if m:
                report.hardware = m.group("hw").strip()
        if not report.modules:
            m = _MODULES.match(text)
            if m:
                report.modules = [w for w in m.group("mods").split() if not w.startswith(("[", "unloaded"))]
