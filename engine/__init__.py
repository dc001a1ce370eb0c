"""The reservation engine: inventory in Redis, changed only by atomic Lua scripts."""
