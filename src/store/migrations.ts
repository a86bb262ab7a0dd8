/**
 * Schema migrations, applied in order inside one transaction each; PRAGMA
 * user_version records how far a store has come. Never edit a released entry:
 * append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: connections. `sealed` holds the envelope (refresh token, access token,
  // account) and is NULL once revoked; `check_tag` stays so that the holder of a
  // revoked authid can be told "revoked" while everyone else gets the generic answer.
  `CREATE TABLE connections (
     keyid            TEXT PRIMARY KEY,
     service          TEXT    NOT NULL,
     state            TEXT    NOT NULL CHECK (state IN ('active', 'login_required', 'revoked')),
     check_tag        BLOB    NOT NULL,
     sealed           BLOB,
     version          INTEGER NOT NULL,
     created_at       INTEGER NOT NULL,
     last_refresh_at  INTEGER,
     last_used_at     INTEGER,
     state_changed_at INTEGER,
     state_reason     TEXT
   ) STRICT`,
  // 2: notifications already sent, one row per cause (see src/notify): once per
  // cause across restarts, and across several instances on one database.
  `CREATE TABLE notifications (
     key     TEXT    PRIMARY KEY,
     sent_at INTEGER NOT NULL
   ) STRICT`,
];
