"""Thin views: parse, call the engine or a query, render."""
