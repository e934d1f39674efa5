from alembic import context

from distributor.store.schema import metadata

engine = context.config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"
with engine.connect() as connection:
    if sqlite:  # a table rebuilt by a batch migration must not trip the foreign keys that point at it
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if sqlite:
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")
