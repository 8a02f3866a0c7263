"""Aggregations computed by the kernel: ftrace `hist` triggers, planned, written and read back.

A hist trigger (Documentation/trace/histogram.rst, CONFIG_HIST_TRIGGERS) keeps a hash table per event,
keyed by up to a few event fields, summing `hitcount` and any numeric fields given as values. The session
appends one named trigger per (probe, aggregation, event) to the event's `trigger` file in its own
instance; at the end it reads the event's `hist` file, turns every row back into the keys and values the
user-space engine would have computed, and hands them over as rows for
`AggregateSink.merge_kernel_rows`, so the printed result is the same text.

What goes to the kernel, and why the rest does not:

- `count()`, `sum(x)` and `avg(x)` (sum and hitcount), and `hist(x)` / `lhist(x, ...)` keyed by the raw value
  of `x` and bucketed in user space. The kernel's own `.log2` rounds up (2^k holds (2^(k-1), 2^k], and 0
  shares a bucket with 1), so unitrace's [2^k, 2^(k+1)) buckets cannot be rebuilt from it; `.buckets=N`
  is used for `lhist` when the kernel's buckets fall exactly inside unitrace's (min >= 0, min and max
  multiples of the step).
- keys and values that are fields of the one event the kernel sees: `tid` (common_pid), `pid` (common_pid,
  turned into the process id in user space), `cpu` (common_cpu), a tracepoint's fields, `ret` at a syscall
  exit or kretprobe/uretprobe, `argN` at a kprobe/uprobe entry; `func` and `probe` are the same for every
  record of one event.
- the predicate must go to the kernel whole (it becomes the trigger's `if` clause: event filters do not
  apply to triggers).

Stays in user space: `min`/`max` (the kernel only sums), `comm` as a key (hist triggers of these kernels
cannot key by the thread's name at the time of the event; keying by pid and naming rows at the end would
count a thread's events before an exec under its new name), syscall arguments (they are on the entry
record, and which calls count is decided by joining entry and exit), durations, `errno`, expressions,
percentiles, and anything of a probe whose predicate needs user space.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from unitrace.backends.ftrace.formats import EventFormat
from unitrace.model.expr import Name
from unitrace.model.probe import AggregateAction, Probe

# Entries per hist table: the kernel's maximum is 2^17 (TRACING_MAP_BITS_MAX); rows beyond it are dropped
# and counted in the table's "Dropped" total, which the session reports as lost events.
HIST_SIZE = 16384
_U64 = 1 << 64


@dataclass(frozen=True, slots=True)
class HistFeatures:
    """What this kernel's hist triggers accept, from the tracefs README."""

    supported: bool = False
    common_cpu: bool = False  # "common_cpu" (5.15+); older kernels called it "cpu"
    buckets: bool = False  # the `.buckets=N` key modifier (5.17+)

    @classmethod
    def from_readme(cls, text: str) -> HistFeatures:
        if "hist:keys" not in text:
            return cls()
        return cls(True, "common_cpu" in text, ".buckets" in text)


@dataclass(frozen=True, slots=True)
class HistKey:
    """One part of the user-space key: taken from a kernel key, or the same for every record."""

    kind: str  # "field" (a kernel key's value), "pid" (common_pid -> process id), "syscall" (nr -> name), "const"
    index: int = -1  # which kernel key
    const: object = None


@dataclass(frozen=True, slots=True)
class HistTrigger:
    probe: int
    slot: int
    func: str
    path: str  # "events/SYSTEM/EVENT", the group still GROUP_PLACEHOLDER for dynamic events
    name: str  # suffix of the trigger's name; the session prefixes its group name (names are global)
    kernel_keys: tuple[str, ...]  # as written: "prev_comm", "common_pid", "ret.buckets=10"
    key_names: tuple[str, ...]  # as the kernel prints them: "prev_comm", "common_pid", "ret"
    string_keys: frozenset[int]
    signed_keys: frozenset[int]
    keys: tuple[HistKey, ...]  # how to build the user-space key tuple
    value: str | None  # a numeric field summed by the kernel, None for count()
    value_signed: bool = False
    bucket_key: int = -1  # hist/lhist: the kernel key holding the value (raw, or `.buckets=` start)
    params: tuple[int, ...] = ()
    filter: str = ""

    def command(self, group: str) -> str:
        vals = "hitcount" + (f",{self.value}" if self.value else "")
        keys = ",".join(self.kernel_keys) if self.kernel_keys else "common_type"
        cmd = f"hist:name={group}_{self.name}:keys={keys}:vals={vals}:sort=hitcount:size={HIST_SIZE}"
        return cmd + (f" if {self.filter}" if self.filter else "")


@dataclass(frozen=True, slots=True)
class AggregatePlacement:
    """Where one aggregation runs, and why; `unitrace compile` prints these."""

    probe: int
    slot: int
    text: str  # "count() by prev_comm"
    triggers: tuple[HistTrigger, ...] = ()
    reason: str = ""  # why user space (empty when in the kernel)

    @property
    def in_kernel(self) -> bool:
        return bool(self.triggers)


class NotInKernel(Exception):
    pass


# ---- planning -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EventView:
    """What the planner needs of one event a probe compiles to."""

    path: str
    role: str  # "exit", "tracepoint", "call", "return", "raw_exit"
    fmt: EventFormat | None
    filter: str
    func: str  # the value of `func` for its records
    nargs: int = 0  # kprobe/uprobe entries: how many argN fields


def _field_of(view: EventView, name: str, features: HistFeatures) -> tuple[str, bool, bool] | None:
    """our name -> (kernel field, is string, is signed) on this event, or None."""
    if name == "tid":
        return "common_pid", False, True
    if name == "cpu":
        return ("common_cpu" if features.common_cpu else "cpu"), False, True
    if view.role in ("exit", "raw_exit", "return"):
        return ("ret", False, True) if name == "ret" else None
    if view.role == "call":  # kprobe/uprobe entries fetch arg0..argN as u64
        m = re.fullmatch(r"arg(\d+)", name)
        return (name, False, False) if m and int(m.group(1)) < view.nargs else None
    if view.fmt is None:
        return None
    f = view.fmt.field(name)
    if f is None or f.name.startswith("common_") or f.name == "__syscall_nr":
        return None
    if f.is_string:
        return f.name, True, False
    if f.array_len or f.data_loc or f.size not in (1, 2, 4, 8):
        return None
    return f.name, False, f.signed


def _reason_for(name: str, view: EventView) -> str:
    if name == "comm":
        return ("comm: this kernel's hist triggers cannot key by the thread's name at the time of the event "
                "(keying by pid would name a thread's events before an exec after the new program)")
    if name == "duration":
        return "duration: measured in user space, from a call's entry to its exit"
    if name == "errno":
        return "errno: derived from ret in user space"
    if view.role in ("exit", "raw_exit"):
        return f"{name}: syscall arguments are on the entry record, and which calls count is decided by " \
               "joining entry and exit in user space"
    return f"{name}: not a numeric or string field of {view.path.removeprefix('events/')}"


class _KernelKeys:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.printed: list[str] = []
        self.strings: set[int] = set()
        self.signed: set[int] = set()

    def add(self, text: str, printed: str, is_string: bool, is_signed: bool) -> int:
        if text in self.texts:
            return self.texts.index(text)
        self.texts.append(text)
        self.printed.append(printed)
        i = len(self.texts) - 1
        if is_string:
            self.strings.add(i)
        if is_signed:
            self.signed.add(i)
        return i


def _plan_one(index: int, slot: int, action: AggregateAction, views: Sequence[EventView],
              features: HistFeatures) -> tuple[HistTrigger, ...]:
    if action.func in ("min", "max"):
        raise NotInKernel(f"{action.func}(): hist triggers only sum")
    value: Name | None = None
    if action.value is not None:
        if not isinstance(action.value, Name):
            raise NotInKernel("the value is an expression; hist triggers sum fields")
        value = action.value
    for k in action.keys:
        if not isinstance(k, Name):
            raise NotInKernel("a key is an expression; hist triggers key by fields")
    triggers: list[HistTrigger] = []
    for n, view in enumerate(views):
        kk = _KernelKeys()
        kernel_key = kk.add
        keys: list[HistKey] = []
        for k in action.keys:
            assert isinstance(k, Name)
            name = k.name
            if name == "func":
                if view.role == "raw_exit":
                    keys.append(HistKey("syscall", kernel_key("id", "id", False, True)))
                else:
                    keys.append(HistKey("const", const=view.func))
                continue
            if name == "pid":
                keys.append(HistKey("pid", kernel_key("common_pid", "common_pid", False, True)))
                continue
            found = _field_of(view, name, features)
            if found is None:
                raise NotInKernel(_reason_for(name, view))
            fname, is_string, is_signed = found
            keys.append(HistKey("field", kernel_key(fname, fname, is_string, is_signed)))
        value_field: str | None = None
        value_signed = False
        bucket_key = -1
        if value is not None:
            found = _field_of(view, value.name, features)
            if found is None:
                raise NotInKernel(_reason_for(value.name, view))
            fname, is_string, value_signed = found
            if is_string:
                raise NotInKernel(f"{value.name}: a string cannot be summed")
            if action.func in ("hist", "lhist"):
                text = fname
                if action.func == "lhist" and features.buckets:
                    lo, hi, step = action.params
                    if lo >= 0 and lo % step == 0 and hi % step == 0 and hi < (1 << 62):
                        text = f"{fname}.buckets={step}"
                bucket_key = kernel_key(text, fname, False, value_signed)
            else:
                value_field = fname
        if not kk.texts:  # a table needs a key: rows per thread, summed into the one cell
            kernel_key("common_pid", "common_pid", False, True)
        if len(kk.texts) > 3:
            raise NotInKernel("more than three kernel keys")
        triggers.append(HistTrigger(index, slot, action.func, view.path, f"p{index}s{slot}e{n}",
                                    tuple(kk.texts), tuple(kk.printed), frozenset(kk.strings), frozenset(kk.signed),
                                    tuple(keys), value_field, value_signed, bucket_key, action.params,
                                    view.filter))
    return tuple(triggers)


def describe_action(action: AggregateAction) -> str:
    from unitrace.lang import format_expr

    args = [format_expr(action.value)] if action.value is not None else []
    args += [str(p) for p in action.params]
    text = f"{action.func}({', '.join(args)})"
    if action.keys:
        text += " by " + ", ".join(format_expr(k) for k in action.keys)
    return (f"@{action.name} = " if action.name else "") + text


def plan_aggregates(index: int, probe: Probe, views: Sequence[EventView] | None, residual_reason: str,
                    features: HistFeatures) -> list[AggregatePlacement]:
    """Placements of every aggregation of one probe. `views` is None when the probe's events cannot carry
    triggers at all; `residual_reason` is non-empty when its predicate needs user space."""
    out: list[AggregatePlacement] = []
    aggs = [a for a in probe.actions if isinstance(a, AggregateAction)]
    for slot, action in enumerate(aggs):
        text = describe_action(action)
        try:
            if not features.supported:
                raise NotInKernel("this kernel has no hist triggers (CONFIG_HIST_TRIGGERS)")
            if residual_reason:
                raise NotInKernel(residual_reason)
            if not views:
                raise NotInKernel("these events cannot carry hist triggers")
            triggers = _plan_one(index, slot, action, views, features)
        except NotInKernel as exc:
            out.append(AggregatePlacement(index, slot, text, (), str(exc)))
            continue
        out.append(AggregatePlacement(index, slot, text, triggers))
    return out


# ---- reading ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HistRow:
    keys: tuple[object, ...]  # the kernel keys: int, or str for string keys (".buckets=": the bucket start)
    hitcount: int
    values: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class HistTable:
    trigger: str = ""  # the "trigger info" line
    rows: list[HistRow] = field(default_factory=list)
    hits: int = 0
    entries: int = 0
    dropped: int = 0


_TRIGGER_INFO = re.compile(r"^#\s*trigger info:\s*(?P<info>.*)$")
_TOTAL = re.compile(r"^\s*(?P<name>Hits|Entries|Dropped):\s*(?P<n>\d+)")
_NUMBER = re.compile(r"-?\d+")
_VALUE = re.compile(r"([A-Za-z_][\w.]*):\s*(-?\d+)")


def _parse_key(text: str, name: str, is_string: bool) -> object:
    text = text.strip()
    if is_string:
        return text
    if text.startswith("~"):  # `.buckets=N`: "~ 130-139" (the start), `.log2`: "~ 2^11" (the exponent)
        m = _NUMBER.search(text.split("^", 1)[1] if "^" in text else text)
        return int(m.group()) if m else 0
    if text.endswith("]") and "[" in text:  # ".execname"/".syscall": "cat [  160]"
        m = _NUMBER.search(text[text.rindex("["):])
        return int(m.group()) if m else 0
    if text.startswith("0x"):
        return int(text.split()[0], 16)
    m = _NUMBER.match(text)
    if m is None:
        raise ValueError(f"{name}: cannot read {text!r}")
    return int(m.group())


KeyLookup = Callable[[str], tuple[Sequence[str], frozenset[int]] | None]


def parse_hist_tables(text: str, keys_of: KeyLookup) -> list[HistTable]:
    """The tables of an event's `hist` file (one per trigger on the event, in the order listed).

    `keys_of(trigger info)` gives the key names that table was asked for (as the kernel prints them) and
    which of them are strings, or None to skip the table. Rows look like `{ k1: v1, k2: v2 } hitcount: N
    val: M` on every kernel since 4.7; padding, the `[active]`/`[paused]` marks and the totals' layout vary,
    and newer kernels add `.percent`/`.graph` columns, so the parser keys on the names it asked for, not on
    columns. String keys may hold spaces and commas."""
    tables: list[HistTable] = []
    current: HistTable | None = None
    wanted: tuple[Sequence[str], frozenset[int]] | None = None
    for line in text.splitlines():
        m = _TRIGGER_INFO.match(line)
        if m:
            current = HistTable(m.group("info").strip())
            wanted = keys_of(current.trigger)
            if wanted is None:
                current = None
            else:
                tables.append(current)
            continue
        if current is None or wanted is None:
            continue
        t = _TOTAL.match(line)
        if t:
            setattr(current, t.group("name").lower(), int(t.group("n")))
            continue
        if line.startswith("{"):
            current.rows.append(_parse_row(line, *wanted))
    return tables


def _parse_row(line: str, key_names: Sequence[str], string_keys: frozenset[int]) -> HistRow:
    hit = line.find("} hitcount:")
    close = hit if hit >= 0 else line.rfind("}")
    if close < 0:
        raise ValueError(f"hist row without its closing brace: {line!r}")
    body, rest = line[1:close], line[close + 1:]
    keys: list[object] = []
    pos = 0
    for i, name in enumerate(key_names):
        start = body.find(f"{name}:", pos)
        if start < 0:
            raise ValueError(f"hist row without {name}: {line!r}")
        start += len(name) + 1
        if i + 1 < len(key_names):
            # a string is padded to a fixed width and may hold anything, the next key's name included:
            # its end is the last separator before the keys that follow
            sep = f", {key_names[i + 1]}:"
            end = body.rfind(sep, start) if i in string_keys else body.find(sep, start)
            if end < 0:
                raise ValueError(f"hist row without {key_names[i + 1]}: {line!r}")
        else:
            end = len(body)
        keys.append(_parse_key(body[start:end], name, i in string_keys))
        pos = end
    values = {name: int(n) for name, n in _VALUE.findall(rest)}
    hitcount = values.pop("hitcount", 0)
    return HistRow(tuple(keys), hitcount, values)


def parse_hist(text: str, key_names: Sequence[str], string_keys: frozenset[int] = frozenset()) -> list[HistTable]:
    """Every table of a `hist` file, all asked for with the same keys."""
    return parse_hist_tables(text, lambda _info: (key_names, string_keys))


def trigger_name(info: str) -> str:
    """`hist:name=foo:keys=...` -> foo ("" for an unnamed trigger)."""
    m = re.search(r"(?:^|:)name=([^:\s]+)", info)
    return m.group(1) if m else ""


@dataclass(frozen=True, slots=True)
class KernelAggSpec:
    probe: int
    slot: int


@dataclass(frozen=True, slots=True)
class KernelAggRow:
    """The shape AggregateSink.merge_kernel_rows takes (as the bpf backend's AggRow)."""

    spec: KernelAggSpec
    keys: tuple[object, ...]
    bucket: int
    count: int
    total: int
    minimum: int | None = None
    maximum: int | None = None


def _signed(v: int) -> int:
    return v - _U64 if v >= 1 << 63 else v


def rows_for(trigger: HistTrigger, table: HistTable, tgid_of: Callable[[int], int],
             syscall_name: Callable[[int], str]) -> list[KernelAggRow]:
    """One trigger's table -> rows in the user-space engine's terms (its keys, its buckets)."""
    from unitrace.sinks.hist import linear_bucket, log2_bucket

    spec = KernelAggSpec(trigger.probe, trigger.slot)
    out: list[KernelAggRow] = []
    for row in table.rows:
        raw = [(_signed(k) if isinstance(k, int) and i in trigger.signed_keys else k) for i, k in enumerate(row.keys)]
        key: list[object] = []
        for hk in trigger.keys:
            if hk.kind == "const":
                key.append(hk.const)
            elif hk.kind == "pid":
                key.append(tgid_of(int(raw[hk.index])))  # type: ignore[call-overload]
            elif hk.kind == "syscall":
                key.append(syscall_name(int(raw[hk.index])))  # type: ignore[call-overload]
            else:
                key.append(raw[hk.index])
        bucket = -1
        total = 0
        if trigger.bucket_key >= 0:
            v = raw[trigger.bucket_key]
            assert isinstance(v, int)
            if trigger.func == "hist":
                bucket = log2_bucket(v)
            else:
                lo, hi, step = trigger.params
                bucket = 0 if v < 0 else linear_bucket(v, lo, hi, step)
        elif trigger.value:
            total = row.values.get(trigger.value, 0)
            total = _signed(total % _U64) if trigger.value_signed else total
        out.append(KernelAggRow(spec, tuple(key), bucket, row.hitcount, total))
    return out
