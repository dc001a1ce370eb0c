"""Postgres: the system of record. Migrations, queries and the write-behind persister."""
