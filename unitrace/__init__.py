"""unitrace: one Linux tracer behind one probe model.

    import unitrace
    with unitrace.trace("syscall:openat", command=["cat", "/etc/hostname"]) as events:
        for ev in events:
            print(ev.name, ev.args, ev.ret_text)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "measure", "trace"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Lazy: `import unitrace` must stay cheap for the CLI's start-up.
    if name in ("trace", "measure"):
        from unitrace import api

        return getattr(api, name)
    raise AttributeError(name)
