"""A BPF ring buffer read straight from its mapped pages: records are sliced out in a Python loop, with no call
from C into Python per record (bcc's ring_buffer_poll calls a ctypes callback for each one, about 2 µs), and
the consumer position is written back once per batch.

The layout is the kernel's (kernel/bpf/ringbuf.c, include/uapi/linux/bpf.h), the one libbpf's ringbuf.c
maps: page 0 holds the consumer position and is the only page user space may write; from page 1 on, the
producer position's page, then the data pages mapped twice in a row, so that a record wrapping around the
end reads as one slice. Each record starts with an 8-byte header (BPF_RINGBUF_HDR_SZ): a u32 length with
BPF_RINGBUF_BUSY_BIT (still being written: stop there) and BPF_RINGBUF_DISCARD_BIT (skip it), then a u32
page offset; records are 8-byte aligned. Reading the positions with plain loads is enough on x86-64, whose
loads are not reordered with other loads; elsewhere the session keeps bcc's reader.
"""

from __future__ import annotations

import mmap
import platform
import select
import struct

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SZ = 8
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def direct_read_supported() -> bool:
    return platform.machine() == "x86_64"


class RingBufReader:
    def __init__(self, map_fd: int, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"a BPF ring buffer's size is a power of two, not {size}")
        page = mmap.PAGESIZE
        self._page = page
        self._mask = size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            self._cons.close()
            raise
        self._fd = map_fd
        self._epoll: select.epoll | None = None  # made on the first wait

    def wait(self, timeout_ms: int) -> None:
        """Until the kernel wakes us (a forced or adaptive wake-up) or the timeout passes."""
        if self._epoll is None:
            self._epoll = select.epoll()
            self._epoll.register(self._fd, select.EPOLLIN)
        try:
            self._epoll.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1)
        except InterruptedError:
            pass

    def read(self, out: list[bytes]) -> int:
        """Append every committed record's data to `out` and give the space back to the kernel."""
        cons = start = _U64.unpack_from(self._cons, 0)[0]
        prod = _U64.unpack_from(self._prod, 0)[0]
        data, base, mask = self._prod, self._page, self._mask
        u32 = _U32.unpack_from
        append = out.append
        n = 0
        while cons < prod:
            off = base + (cons & mask)
            hdr = u32(data, off)[0]
            if hdr & BUSY_BIT:
                break
            length = hdr & ~(BUSY_BIT | DISCARD_BIT)
            if not hdr & DISCARD_BIT:
                append(data[off + HDR_SZ: off + HDR_SZ + length])
                n += 1
            cons += (length + HDR_SZ + 7) & ~7
            if cons >= prod:
                prod = _U64.unpack_from(self._prod, 0)[0]
        if cons != start:
            _U64.pack_into(self._cons, 0, cons)
        return n

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        self._prod.close()
        self._cons.close()
