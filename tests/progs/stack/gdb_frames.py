"""Run inside gdb (`gdb -batch -x gdb_frames.py --args PROG`): run PROG to its SIGSTOP and print gdb's
backtrace as one JSON line per frame (pc, function, inline or not, file:line), the reference the stack
tests compare our unwinder against."""

import json

import gdb  # type: ignore[import-not-found]

gdb.execute("set pagination off")
gdb.execute("set startup-with-shell off")
gdb.execute("set backtrace past-main on")
gdb.execute("set backtrace past-entry on")
# the programs signal themselves on the way (SIGUSR1 into a handler); only their final SIGSTOP is the stop
gdb.execute("handle all nostop noprint pass", to_string=True)
gdb.execute("handle SIGSTOP stop print nopass", to_string=True)
gdb.execute("run", to_string=True)
frame = gdb.newest_frame()
while frame is not None:
    sal = frame.find_sal()
    print("FRAME " + json.dumps({
        "pc": frame.pc(),
        "name": frame.name() or "",
        "inline": frame.type() == gdb.INLINE_FRAME,
        "sigtramp": frame.type() == gdb.SIGTRAMP_FRAME,
        "tailcall": frame.type() == gdb.TAILCALL_FRAME,
        "file": sal.symtab.filename if sal.symtab else "",
        "line": sal.line,
    }))
    try:
        frame = frame.older()
    except gdb.error:
        print("FRAME-ERROR")
        break
gdb.execute("kill")
