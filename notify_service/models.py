"""Tables of the notify service, all in its own PostgreSQL schema ``notify``."""

from sqlalchemy import MetaData

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="notify")
kit_tables = define_kit_tables(metadata)
