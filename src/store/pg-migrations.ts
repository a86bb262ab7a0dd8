/**
 * The PostgreSQL schema, step by step (broker_schema.version records how far a
 * database has come); the same rows as the SQLite store's connections table, plus
 * the shared short-lived state. Never edit a released entry: append a new one.
 */
export const PG_MIGRATIONS: readonly string[] = [
  // 1: connections (as in SQLite: see migrations.ts); every change of version or
  // state is announced on broker_connections as `<keyid> <version>`, committed with
  // it, so other instances drop what they remember of the row at once.
  `CREATE TABLE connections (
     keyid            text PRIMARY KEY,
     service          text    NOT NULL,
     state            text    NOT NULL CHECK (state IN ('active', 'login_required', 'revoked')),
     check_tag        bytea   NOT NULL,
     sealed           bytea,
     version          integer NOT NULL,
     created_at       bigint  NOT NULL,
     last_refresh_at  bigint,
     last_used_at     bigint,
     state_changed_at bigint,
     state_reason     text
   );
   CREATE FUNCTION broker_connection_changed() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     IF TG_OP = 'DELETE' THEN
       PERFORM pg_notify('broker_connections', OLD.keyid || ' -1');
       RETURN OLD;
     END IF;
     PERFORM pg_notify('broker_connections', NEW.keyid || ' ' || NEW.version);
     RETURN NEW;
   END $$;
   CREATE TRIGGER broker_connection_changed AFTER UPDATE OF version, state ON connections
     FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version OR OLD.state IS DISTINCT FROM NEW.state)
     EXECUTE FUNCTION broker_connection_changed();
   CREATE TRIGGER broker_connection_deleted AFTER DELETE ON connections
     FOR EACH ROW EXECUTE FUNCTION broker_connection_changed();
   -- Pending logins and fetch tokens, sealed by their callers; filed under hashes.
   CREATE TABLE transients (
     kind       text   NOT NULL,
     key        text   NOT NULL,
     value      bytea  NOT NULL,
     expires_at bigint NOT NULL,
     PRIMARY KEY (kind, key)
   );
   CREATE INDEX transients_expiry ON transients (expires_at);
   -- Rate-limit windows: failures per client address (or prefix), counted by every instance.
   CREATE TABLE failures (
     kind     text    NOT NULL,
     key      text    NOT NULL,
     count    integer NOT NULL,
     reset_at bigint  NOT NULL,
     PRIMARY KEY (kind, key)
   )`,
  // 2: notifications already sent, one row per cause (see src/notify), as in SQLite:
  // whichever instance claims a cause first sends it, once.
  `CREATE TABLE notifications (
     key     text   PRIMARY KEY,
     sent_at bigint NOT NULL
   )`,
];
