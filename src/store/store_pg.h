/*
 * The PostgreSQL backend of the store, begun (issue 14, docs/postgres.md): its connection and its
 * versioned schema. The rows' functions of store.h are not on it yet, so nothing outside the
 * store's tests opens one; built only with libpq (HAVE_LIBPQ, meson's -Dlibpq).
 *
 * Several masters share one database: the schema is created and brought up to date by whichever
 * opens it first, under a transaction-scoped advisory lock, so that two masters starting together
 * migrate it once. A database whose schema is newer than this binary's is refused.
 *
 * Threading and blocking: like store.h, one thread; pg_store_open blocks on the network for as
 * long as libpq's connect_timeout (none unless the connection string sets one).
 *
 * Errors: 0 or a negative errno. A connection string that libpq cannot parse is -EINVAL, not
 * logged (the caller reports its input). Server failures are logged here once, naming the
 * server's host, port and database, never the connection string (it may hold a password).
 */
#ifndef CRAWLAB_STORE_PG_H
#define CRAWLAB_STORE_PG_H

/* The schema version this binary writes (pg_schema_steps in store_pg.c). */
#define PG_SCHEMA_VERSION 1

struct pg_store;

/*
 * Connects to conninfo (a libpq connection string: "postgres://..." or "host=... dbname=..."),
 * then creates or migrates the schema. Returns -EINVAL for a connection string libpq cannot
 * parse, -ECONNREFUSED when the server cannot be reached or refuses the login, -EPROTO when the
 * database's schema is newer than PG_SCHEMA_VERSION, -EIO when a statement fails. On success
 * *out owns the connection; release it with pg_store_close. Blocks.
 */
int pg_store_open(const char *conninfo, struct pg_store **out);

/* Closes the connection. NULL is accepted. */
void pg_store_close(struct pg_store *p);

/* The database's schema version (PG_SCHEMA_VERSION once opened), or a negative errno. */
int pg_store_schema_version(struct pg_store *p);

#endif
