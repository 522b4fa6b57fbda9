"""Tables of the gateway service, all in its own PostgreSQL schema ``gateway``."""

from sqlalchemy import MetaData

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="gateway")
kit_tables = define_kit_tables(metadata)
