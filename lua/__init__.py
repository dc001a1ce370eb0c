"""The Lua scripts of the reservation engine, shipped as package data (boxoffice_lua)."""
