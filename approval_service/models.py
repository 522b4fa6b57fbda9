"""Tables of the approval service, all in its own PostgreSQL schema ``approval``."""

from sqlalchemy import MetaData

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="approval")
kit_tables = define_kit_tables(metadata)
