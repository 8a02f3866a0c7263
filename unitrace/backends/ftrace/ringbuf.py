"""Decoding of ftrace ring-buffer pages as read from `per_cpu/cpuN/trace_pipe_raw`.

Layout (kernel/trace/ring_buffer.c, described at run time by `events/header_page` and `header_event`):
a page starts with a u64 timestamp and a commit word (the number of data bytes, with flag bits on top for
missed events), then records. Each record starts with a 32-bit header: type_len (5 bits) and time_delta
(27 bits). type_len 1..28 means a data record of type_len*4 bytes; 0 means the length is in the next
word; 29 is padding, 30 a time extension of the delta, 31 an absolute timestamp.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

TYPE_PADDING = 29
TYPE_TIME_EXTEND = 30
TYPE_TIME_STAMP = 31
# Flag bits the kernel sets in the page's commit word when events were lost before this page.
MISSED_EVENTS = 1 << 31
MISSED_STORED = 1 << 30
COMMIT_MASK = (1 << 27) - 1  # libtraceevent's mask for the data size


@dataclass(frozen=True, slots=True)
class PageLayout:
    """Offsets from `events/header_page`; the defaults are those of every 64-bit kernel."""

    commit_offset: int = 8
    commit_size: int = 8
    data_offset: int = 16

    @classmethod
    def parse(cls, header_page: str) -> PageLayout:
        offsets: dict[str, tuple[int, int]] = {}
        for line in header_page.splitlines():
            line = line.strip()
            if not line.startswith("field:"):
                continue
            decl, off, size = (p.strip() for p in line.split(";")[:3])
            name = decl.split()[-1]
            offsets[name] = (int(off.split(":")[1]), int(size.split(":")[1]))
        commit = offsets.get("commit", (8, 8))
        data = offsets.get("data", (16, 0))
        return cls(commit[0], commit[1], data[0])


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(slots=True)
class PageInfo:
    timestamp: int
    size: int
    missed: int  # -1: some were missed, count unknown; 0: none


def parse_page(page: bytes | memoryview, layout: PageLayout = PageLayout()) -> tuple[PageInfo, list[tuple[int, int, int]]]:
    """Records of one page as (timestamp, data offset in page, data length), plus the page's info."""
    ts = _U64.unpack_from(page, 0)[0]
    if layout.commit_size == 8:
        commit = _U64.unpack_from(page, layout.commit_offset)[0]
    else:
        commit = _U32.unpack_from(page, layout.commit_offset)[0]
    size = commit & COMMIT_MASK
    missed = 0
    if commit & MISSED_EVENTS:
        missed = -1
        if commit & MISSED_STORED and layout.data_offset + size + 8 <= len(page):
            missed = _U64.unpack_from(page, layout.data_offset + size)[0]
    records: list[tuple[int, int, int]] = []
    pos = layout.data_offset
    end = layout.data_offset + min(size, len(page) - layout.data_offset)
    unpack = _U32.unpack_from
    while pos + 4 <= end:
        header = unpack(page, pos)[0]
        type_len = header & 0x1F
        delta = header >> 5
        if type_len == 0:
            length = unpack(page, pos + 4)[0]  # includes this length word
            ts += delta
            records.append((ts, pos + 8, length - 4))
            pos += 4 + length
        elif type_len <= 28:
            ts += delta
            records.append((ts, pos + 4, type_len * 4))
            pos += 4 + type_len * 4
        elif type_len == TYPE_PADDING:
            if delta == 0:
                break  # the rest of the page is empty
            pos += 4 + unpack(page, pos + 4)[0]
        elif type_len == TYPE_TIME_EXTEND:
            ts += (unpack(page, pos + 4)[0] << 27) | delta
            pos += 8
        else:  # TYPE_TIME_STAMP: absolute, lower 59 bits; the page timestamp holds the upper ones
            absolute = (unpack(page, pos + 4)[0] << 27) | delta
            ts = (ts & ~((1 << 59) - 1)) | absolute
            pos += 8
    return PageInfo(_U64.unpack_from(page, 0)[0], size, missed), records


def decode_page(page: bytes, layout: PageLayout, unpackers: dict[int, object],
                out: list[tuple[int, int, int, tuple]]) -> int:
    """The fast path: append (timestamp, event id, record offset, values) for every record of a known
    event id, where values = unpackers[id](page, offset) (a Struct's unpack_from over the common header and
    the scalar fields). Returns the page's missed-events mark (0, a count, or -1 for an unknown count).

    One loop with local names and no intermediate lists: this is the reader's hot path."""
    ts = _U64.unpack_from(page, 0)[0]
    commit = (_U64.unpack_from(page, layout.commit_offset)[0] if layout.commit_size == 8
              else _U32.unpack_from(page, layout.commit_offset)[0])
    size = commit & COMMIT_MASK
    missed = 0
    if commit & MISSED_EVENTS:
        missed = -1
        if commit & MISSED_STORED and layout.data_offset + size + 8 <= len(page):
            missed = _U64.unpack_from(page, layout.data_offset + size)[0]
    pos = layout.data_offset
    end = pos + min(size, len(page) - pos)
    u32 = _U32.unpack_from
    u16 = _U16.unpack_from
    get = unpackers.get
    append = out.append
    while pos + 4 <= end:
        header = u32(page, pos)[0]
        type_len = header & 0x1F
        if 0 < type_len <= 28:
            ts += header >> 5
            off = pos + 4
            pos = off + type_len * 4
        elif type_len == 0:
            ts += header >> 5
            off = pos + 8
            pos += 4 + u32(page, pos + 4)[0]
        elif type_len == TYPE_TIME_EXTEND:
            ts += (u32(page, pos + 4)[0] << 27) | (header >> 5)
            pos += 8
            continue
        elif type_len == TYPE_PADDING:
            if header >> 5 == 0:
                break
            pos += 4 + u32(page, pos + 4)[0]
            continue
        else:
            absolute = (u32(page, pos + 4)[0] << 27) | (header >> 5)
            ts = (ts & ~((1 << 59) - 1)) | absolute
            pos += 8
            continue
        event_id = u16(page, off)[0]
        unpack = get(event_id)
        if unpack is not None:
            append((ts, event_id, off, unpack(page, off)))  # type: ignore[operator]
    return missed


def iter_records(page: bytes, layout: PageLayout = PageLayout()) -> Iterator[tuple[int, memoryview]]:
    view = memoryview(page)
    _, records = parse_page(view, layout)
    for ts, off, length in records:
        yield ts, view[off: off + length]
