"""Tables of the catalog service, all in its own PostgreSQL schema ``catalog``."""

from sqlalchemy import MetaData

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="catalog")
kit_tables = define_kit_tables(metadata)
