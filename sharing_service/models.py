"""Tables of the sharing service, all in its own PostgreSQL schema ``sharing``."""

from sqlalchemy import MetaData

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="sharing")
kit_tables = define_kit_tables(metadata)
