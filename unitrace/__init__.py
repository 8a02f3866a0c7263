"""unitrace: one Linux tracer behind one probe model."""

__version__ = "0.1.0"
