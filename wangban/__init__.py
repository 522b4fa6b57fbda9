"""Wangban (网办) shared kit: settings, database, events, outbox/inbox, auth, errors,
observability and the ``wangban`` CLI. Every service builds on it; none copies it."""
