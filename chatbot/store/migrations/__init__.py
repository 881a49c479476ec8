"""Alembic migrations of the conversation store, for SQLite and PostgreSQL alike.

They ship inside the package (no ``alembic.ini`` is needed at run time): ``chatbot/store/migrate.py``
builds the Alembic ``Config`` in code and the Store runs ``upgrade head`` whenever it opens a
database. ``baseline.py`` freezes the schema of the release before migrations existed, which the
first revision creates and the upgrade of an unversioned database is checked against.
"""
