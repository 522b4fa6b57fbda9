"""Tables of the intake service, all in its own PostgreSQL schema ``intake``."""

from sqlalchemy import MetaData

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="intake")
kit_tables = define_kit_tables(metadata)
