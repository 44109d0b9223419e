//! PostgreSQL only: `policy_take_slot`, admission's slot taken in one statement (one round trip,
//! one commit) instead of a transaction of five (`BEGIN`, the user's lock, the count, the insert,
//! `COMMIT`). Same lock, same reads, same writes as the transaction it replaces (see
//! `SqlPolicyStore::take_slot`): the user's advisory lock first, and — the function being
//! volatile, each of its statements reads a fresh snapshot under READ COMMITTED — every earlier
//! admission of the user has committed when the slots are counted. The commit does not wait for
//! the WAL flush (see the function's comment): admission's one fsync is the registry's insert. SQLite keeps the transaction
//! (its write lock serialises admissions already, and it has no round trips).

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The function. `$4`-style parameters: session id, user, started at, created at, the limit
/// (NULL for none) and whether a full user's oldest sessions make room (END_OLDEST). Returns one
/// row: `taken` with the sessions evicted, `held` (the session holds a slot already), or `full`
/// with the sessions holding the slots.
const CREATE: &str = r"
CREATE OR REPLACE FUNCTION policy_take_slot(
    p_session_id text, p_user text, p_started_at bigint, p_created_at bigint,
    p_max integer, p_end_oldest boolean)
RETURNS TABLE (outcome text, sessions text[])
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    held text[];
    room integer;
    evicted text[] := '{}';
BEGIN
    -- The lock of SqlPolicyStore::lock_user (class 0x706f6c69): replicas running either code
    -- serialise with each other.
    PERFORM pg_advisory_xact_lock(1886350441, hashtext(p_user));
    SELECT coalesce(array_agg(s.session_id ORDER BY s.started_at, s.session_id), '{}')
        INTO held FROM policy_slots s WHERE s.user_name = p_user;
    IF p_session_id = ANY(held) THEN
        RETURN QUERY SELECT 'held'::text, '{}'::text[];
        RETURN;
    END IF;
    IF p_max IS NOT NULL THEN
        room := greatest(p_max, 1);
        IF cardinality(held) >= room THEN
            IF NOT p_end_oldest THEN
                RETURN QUERY SELECT 'full'::text, held;
                RETURN;
            END IF;
            -- Oldest first: keep the newest room - 1 and the new one.
            evicted := held[1:cardinality(held) + 1 - room];
            DELETE FROM policy_slots WHERE session_id = ANY(evicted);
            DELETE FROM policy_idle_warnings WHERE session_id = ANY(evicted);
        END IF;
    END IF;
    -- Admission waits for one fsync, not two: the registry's durable insert of the session comes
    -- right after this and, on the same server, flushes the WAL past this commit too. (With the
    -- registry on another server, a crash can lose slots taken in the last WAL-writer delay:
    -- their users may exceed the limit by those sessions until they end.)
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO policy_slots (session_id, user_name, started_at, created_at)
        VALUES (p_session_id, p_user, p_started_at, p_created_at);
    RETURN QUERY SELECT 'taken'::text, evicted;
END
$fn$";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(CREATE).await.map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS policy_take_slot(text, text, bigint, bigint, integer, boolean)",
            )
            .await
            .map(drop)
    }
}
