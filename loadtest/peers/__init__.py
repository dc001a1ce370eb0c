"""Peers to compare against, each built from its published design (not its code): a Postgres
row-lock booking service, and a queue-and-poll service shaped like the original."""
