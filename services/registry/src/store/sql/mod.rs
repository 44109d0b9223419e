//! [`SqlStore`]: the [`SessionStore`] on sea-orm, for PostgreSQL and SQLite alike.
//!
//! Queries are built with sea-orm/sea-query so one code path serves both backends; the only
//! hand-written SQL is PostgreSQL's bulk writes by arrays (activity and its wake-up in `activity.rs`,
//! gateways last seen in `gateways.rs`). Methods that run more
//! than one statement run them in one transaction.

mod activity;
mod conditions;
mod gateways;
mod list;
pub(crate) mod outbox;

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use futures::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, LockBehavior, LockType, OnConflict};
use sea_orm::{
    AccessMode, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, IsolationLevel, JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, SqlErr,
    Statement, TransactionOptions, TransactionTrait, TryInsertResult,
};
use vigil_runtime::{ServiceError, ServiceResult};

use super::entity::{gateway, session};
use super::migration::Migrator;
use super::{SessionStore, TargetSink};
use crate::domain::{
    EpochMillis, GatewayEnd, GatewayRecord, GeoLocation, ListQuery, PendingActivity, Reconciliation, Resolution,
    ResourceType, Selector, SessionEnd, SessionFilter, SessionPage, SessionRecord, SessionStats, SessionStatus,
    last_activity_rank,
};
use session::{Column, enum_code};
use vigil_clients::registry::SessionTarget;

/// The largest page a list returns.
const MAX_PAGE: u64 = 1000;

/// Rows per INSERT when registering a snapshot: each row binds ~33 parameters, and SQLite allows
/// 32,766 per statement (PostgreSQL 65,535).
const INSERT_CHUNK: usize = 500;

/// Sessions and gateways in a SQL database (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
}

impl SqlStore {
    /// A store on `db`. Does not touch the schema: call [`SqlStore::migrate`] (or run the
    /// migrations elsewhere) first. Fails on a backend other than PostgreSQL or SQLite ≥ 3.35.
    pub async fn new(db: DatabaseConnection) -> ServiceResult<Self> {
        vigil_runtime::database::check_backend(&db, "registry").await?;
        Ok(Self { db })
    }

    /// Applies the migrations that have not been applied yet. Safe when several replicas start at
    /// once: the migrations run in one transaction that first takes a database-wide lock (a
    /// PostgreSQL advisory lock; SQLite's write lock), so the others wait, then find nothing to do.
    pub async fn migrate(&self) -> ServiceResult<()> {
        vigil_runtime::database::migrate_locked::<Migrator>(&self.db).await
    }

    /// The underlying connection (pool).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// A transaction that will write. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes fails with `SQLITE_BUSY`
    /// instead of waiting when another connection wrote in between.
    async fn write_transaction(&self) -> ServiceResult<DatabaseTransaction> {
        vigil_runtime::database::begin_write(&self.db).await
    }

    /// A transaction that only reads, seeing one snapshot throughout (a page and its total agree).
    /// SQLite's transactions are snapshots already and it takes no isolation options.
    async fn read_transaction(&self) -> ServiceResult<DatabaseTransaction> {
        let options = if self.backend() == DbBackend::Postgres {
            TransactionOptions {
                isolation_level: Some(IsolationLevel::RepeatableRead),
                access_mode: Some(AccessMode::ReadOnly),
                ..TransactionOptions::default()
            }
        } else {
            TransactionOptions::default()
        };
        Ok(self.db.begin_with_options(options).await?)
    }
}

/// Sets the columns that end a session, and folds its current activity into its row (the caller
/// then deletes its activity row: `activity::forget`). The fold reads the committed activity: a
/// flush still writing the session as the end runs is missed (at most one flush interval of
/// figures). A gateway's close writes its final activity itself first, so only ends by a kill, a
/// lost gateway or a reconcile have that window. (Deleting the activity rows first, which waits
/// for the flush, made an end-all's acknowledgements take over 90 s instead of 19 in `make bench`.)
fn ending(end: &SessionEnd) -> sea_orm::UpdateMany<session::Entity> {
    activity::with_current_activity(session::Entity::update_many())
        .col_expr(Column::Status, Expr::val(enum_code(SessionStatus::Disconnected)))
        .col_expr(Column::EndedAt, Expr::val(end.ended_at))
        .col_expr(Column::EndReason, Expr::val(enum_code(end.reason)))
        .col_expr(Column::EndDetail, Expr::val(end.detail.as_str()))
        .filter(Column::EndedAt.is_null())
}

impl SqlStore {
    /// [`Selector::Ids`]: each named id is live, ended, or unknown; the answer keeps the order
    /// the ids were named in (first mention wins).
    async fn resolve_ids(&self, ids: &[String]) -> ServiceResult<Resolution> {
        let mut found: HashMap<String, session::Model> = activity::sessions_now(JoinType::LeftJoin)
            .filter(conditions::id_in(self.backend(), ids)?)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        let mut resolution = Resolution::default();
        let mut named = HashSet::new();
        for id in ids.iter().filter(|id| named.insert(id.as_str())) {
            match found.remove(id) {
                Some(row) if row.ended_at.is_none() => resolution.live.push(row.into_record()?),
                Some(_) => resolution.already_ended.push(id.clone()),
                None => resolution.unknown.push(id.clone()),
            }
        }
        Ok(resolution)
    }
}

fn records(models: Vec<session::Model>) -> ServiceResult<Vec<SessionRecord>> {
    models.into_iter().map(session::Model::into_record).collect()
}

/// A `COUNT(*)` as the domain's unsigned count.
fn to_count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn insert_session(&self, session: &SessionRecord) -> ServiceResult<()> {
        let row = session::active_model(session)?;
        let inserted = if self.backend() == DbBackend::Postgres {
            let insert = session::Entity::insert(row).build(DbBackend::Postgres);
            let statement = outbox::with_session_started(insert, &[&activity::insert_clause()], session)?;
            self.db.execute_raw(statement).await.map(drop)
        } else {
            let txn = self.write_transaction().await?;
            match session::Entity::insert(row).exec_without_returning(&txn).await {
                Ok(_) => {
                    activity::insert(&txn, std::slice::from_ref(session)).await?;
                    outbox::session_started(&txn, session).await?;
                    return Ok(txn.commit().await?);
                }
                Err(error) => Err(error),
            }
        };
        match inserted {
            Ok(()) => Ok(()),
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(
                ServiceError::AlreadyExists(format!("session {} already exists", session.id)),
            ),
            Err(error) => Err(error.into()),
        }
    }

    async fn get_session(&self, id: &str) -> ServiceResult<Option<SessionRecord>> {
        activity::sessions_now(JoinType::LeftJoin)
            .filter(Column::Id.eq(id))
            .one(&self.db)
            .await?
            .map(session::Model::into_record)
            .transpose()
    }

    async fn end_session(
        &self,
        id: &str,
        gateway_id: Option<&str>,
        end: &SessionEnd,
    ) -> ServiceResult<Option<SessionRecord>> {
        let mut update = ending(end).filter(Column::Id.eq(id));
        if let Some(gateway_id) = gateway_id {
            update = update.filter(Column::GatewayId.eq(gateway_id));
        }
        // The `ended_at IS NULL` condition makes this idempotent: a second end matches no row.
        let txn = self.write_transaction().await?;
        let ended = records(update.exec_with_returning(&txn).await?)?;
        activity::forget(&txn, &ended).await?;
        outbox::sessions_ended(&txn, &ended).await?;
        txn.commit().await?;
        Ok(ended.into_iter().next())
    }

    async fn end_sessions(&self, ends: &[GatewayEnd]) -> ServiceResult<Vec<Option<SessionRecord>>> {
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.write_transaction().await?;
        let ended: Vec<SessionRecord> = match self.backend() {
            // One statement for the whole batch, the rows passed as arrays.
            DbBackend::Postgres => {
                // The activity rows are folded in and deleted by the same statement.
                const SQL: &str = r#"
                    WITH ended AS (
                        UPDATE sessions AS s
                        SET status = $1, ended_at = v.ended_at, end_reason = v.end_reason::smallint,
                            end_detail = v.end_detail,
                            last_activity_at = COALESCE(a.last_activity_at, s.last_activity_at),
                            activity_bucket = COALESCE(a.activity_bucket, s.activity_bucket),
                            bytes_in = COALESCE(a.bytes_in, s.bytes_in),
                            bytes_out = COALESCE(a.bytes_out, s.bytes_out)
                        FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[])
                            AS v(id, gateway_id, ended_at, end_reason, end_detail)
                            LEFT JOIN session_activity AS a ON a.session_id = v.id
                        WHERE s.id = v.id AND s.gateway_id = v.gateway_id AND s.ended_at IS NULL
                        RETURNING s.*
                    ), forgotten AS (
                        DELETE FROM session_activity AS a USING ended WHERE a.session_id = ended.id
                    )
                    SELECT * FROM ended
                "#;
                let statement = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    SQL,
                    [
                        enum_code(SessionStatus::Disconnected).into(),
                        ends.iter().map(|e| e.session_id.clone()).collect::<Vec<_>>().into(),
                        ends.iter().map(|e| e.gateway_id.clone()).collect::<Vec<_>>().into(),
                        ends.iter().map(|e| e.end.ended_at).collect::<Vec<_>>().into(),
                        ends.iter()
                            .map(|e| i32::from(enum_code(e.end.reason)))
                            .collect::<Vec<_>>()
                            .into(),
                        ends.iter().map(|e| e.end.detail.clone()).collect::<Vec<_>>().into(),
                    ],
                );
                records(session::Entity::find().from_raw_sql(statement).all(&txn).await?)?
            }
            // SQLite runs in process: a statement costs no round trip.
            _ => {
                let mut ended = Vec::new();
                for entry in ends {
                    let rows = ending(&entry.end)
                        .filter(Column::Id.eq(entry.session_id.as_str()))
                        .filter(Column::GatewayId.eq(entry.gateway_id.as_str()))
                        .exec_with_returning(&txn)
                        .await?;
                    ended.extend(records(rows)?);
                }
                activity::forget(&txn, &ended).await?;
                ended
            }
        };
        outbox::sessions_ended(&txn, &ended).await?;
        txn.commit().await?;
        // Each ended record answers the first entry that named it.
        let mut by_id: HashMap<String, SessionRecord> =
            ended.into_iter().map(|session| (session.id.clone(), session)).collect();
        Ok(ends.iter().map(|entry| by_id.remove(&entry.session_id)).collect())
    }

    async fn apply_activity(
        &self,
        gateway_id: Option<&str>,
        batch: &[PendingActivity],
        now: EpochMillis,
        idle_after_ms: i64,
    ) -> ServiceResult<Vec<SessionRecord>> {
        let merged = activity::merge(batch);
        if merged.is_empty() {
            return Ok(Vec::new());
        }
        let recent: Vec<String> = merged
            .iter()
            .filter(|row| row.last_input_at != i64::MIN && now.saturating_sub(row.last_input_at) < idle_after_ms)
            .map(|row| row.session_id.clone())
            .collect();

        let txn = self.write_transaction().await?;
        // First the activity, which locks the rows it changes until commit: an idle sweep running
        // meanwhile waits, then sees the new input and leaves those sessions alone.
        activity::record(&txn, gateway_id, &merged).await?;
        // Then wake the IDLE ones with recent input.
        let woken = activity::wake(&txn, gateway_id, &recent).await?;
        let woken = records(woken)?;
        txn.commit().await?;
        Ok(woken)
    }

    async fn mark_idle(&self, cutoff: EpochMillis, limit: u64) -> ServiceResult<Vec<SessionRecord>> {
        use crate::store::entity::session_activity::{self, Column as A};
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The bucket bound lets the index of sessions not IDLE find the candidates, oldest first;
        // the exact time decides.
        let stale = Condition::all()
            .add(A::Idle.eq(false))
            .add(A::ActivityBucket.lte(last_activity_rank(cutoff)))
            .add(A::LastActivityAt.lt(cutoff));
        let mut candidates = session_activity::Entity::find()
            .select_only()
            .column(A::SessionId)
            .filter(stale.clone())
            .order_by_asc(A::ActivityBucket)
            .order_by_asc(A::LastActivityAt)
            .limit(limit);
        if self.backend() == DbBackend::Postgres {
            // Replicas sweeping at the same time take different rows instead of queueing on the
            // same ones; an activity flush writing one of them waits, and vice versa. (SQLite has
            // a single writer: its IMMEDIATE transaction is the lock.)
            candidates = candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        // Separate statements rather than `UPDATE ... WHERE id IN (SELECT ... LIMIT n)`: PostgreSQL
        // may run such a subquery more than once per statement, and with SKIP LOCKED each run can
        // pick other rows, so more than `limit` rows would change.
        let txn = self.write_transaction().await?;
        let ids: Vec<String> = candidates.into_tuple().all(&txn).await?;
        let idled = if ids.is_empty() {
            Vec::new()
        } else {
            // The rows are locked by now; repeating the conditions keeps the update correct even so.
            let marked: Vec<String> = session_activity::Entity::update_many()
                .col_expr(A::Idle, Expr::val(true))
                .filter(conditions::in_list(
                    self.backend(),
                    Expr::col((session_activity::Entity, A::SessionId)),
                    &ids,
                )?)
                .filter(stale)
                .exec_with_returning(&txn)
                .await?
                .into_iter()
                .map(|row| row.session_id)
                .collect();
            activity::set_status(&txn, &marked, SessionStatus::Active, SessionStatus::Idle).await?
        };
        let idled = records(idled)?;
        txn.commit().await?;
        Ok(idled)
    }

    async fn reconcile_gateway(
        &self,
        gateway_id: &str,
        held: &[SessionRecord],
        end: &SessionEnd,
    ) -> ServiceResult<Reconciliation> {
        let held_ids: HashSet<&str> = held.iter().map(|session| session.id.as_str()).collect();
        let txn = self.write_transaction().await?;

        let live_ids: Vec<String> = session::Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::GatewayId.eq(gateway_id))
            .filter(Column::EndedAt.is_null())
            .into_tuple()
            .all(&txn)
            .await?;
        let gone: Vec<String> = live_ids
            .into_iter()
            .filter(|id| !held_ids.contains(id.as_str()))
            .collect();
        let ended = if gone.is_empty() {
            Vec::new()
        } else {
            ending(end)
                .filter(conditions::id_in(self.backend(), &gone)?)
                .filter(Column::GatewayId.eq(gateway_id))
                .exec_with_returning(&txn)
                .await?
        };

        let mut registered = Vec::new();
        if !held.is_empty() {
            let all_held: Vec<String> = held_ids.iter().map(|id| (*id).to_owned()).collect();
            let known: HashSet<String> = session::Entity::find()
                .select_only()
                .column(Column::Id)
                .filter(conditions::id_in(self.backend(), &all_held)?)
                .into_tuple::<String>()
                .all(&txn)
                .await?
                .into_iter()
                .collect();
            let mut seen = HashSet::new();
            let unknown: Vec<&SessionRecord> = held
                .iter()
                .filter(|session| !known.contains(&session.id) && seen.insert(session.id.as_str()))
                .collect();
            for chunk in unknown.chunks(INSERT_CHUNK) {
                let rows = chunk
                    .iter()
                    .map(|session| session::active_model(session))
                    .collect::<ServiceResult<Vec<_>>>()?;
                // DO NOTHING: a session registered concurrently (by its own start) stays as it is.
                let inserted = session::Entity::insert_many(rows)
                    .on_conflict_do_nothing()
                    .exec_with_returning_many(&txn)
                    .await?;
                if let TryInsertResult::Inserted(models) = inserted {
                    registered.extend(models);
                }
            }
        }
        // Decoded before committing, so a row that cannot be read back changes nothing.
        let reconciliation = Reconciliation {
            ended: records(ended)?,
            registered: records(registered)?,
        };
        activity::forget(&txn, &reconciliation.ended).await?;
        activity::insert(&txn, &reconciliation.registered).await?;
        outbox::sessions_ended(&txn, &reconciliation.ended).await?;
        txn.commit().await?;
        Ok(reconciliation)
    }

    async fn list_sessions(&self, query: &ListQuery) -> ServiceResult<SessionPage> {
        self.list_page(query).await
    }

    async fn live_counts(&self) -> ServiceResult<(u64, u64)> {
        // Two counts, each served by an index of live sessions: the IDLE ones are few (their
        // partial index), and the live ones are read from an index, not from the wide rows.
        // `stats` groups every live row by three columns and sums their durations: ~100 ms of the
        // database's CPU at 100,000 live sessions, which the gauge spent every 15 s on each replica.
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL) AS live, \
                    (SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL AND status = {idle}) AS idle",
            idle = enum_code(SessionStatus::Idle)
        );
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.backend(), sql))
            .await?
            .ok_or_else(|| ServiceError::internal("a count returned no row"))?;
        let live = to_count(row.try_get::<i64>("", "live")?);
        let idle = to_count(row.try_get::<i64>("", "idle")?);
        Ok((live.saturating_sub(idle), idle))
    }

    async fn stats(
        &self,
        filter: &SessionFilter,
        now: EpochMillis,
        ended_since: EpochMillis,
    ) -> ServiceResult<SessionStats> {
        let matching = conditions::matching(self.backend(), filter);
        // Milliseconds each live session has run so far (none for a start in the future). SUM of
        // BIGINT is NUMERIC in PostgreSQL: cast back so both backends return a BIGINT.
        let running_ms = Expr::case(
            Column::StartedAt.lt(now),
            Expr::val(now).sub(Expr::col(Column::StartedAt)),
        )
        .finally(Expr::val(0_i64));
        let live_groups = session::Entity::find()
            .select_only()
            .column(Column::Status)
            .column(Column::ResourceType)
            .column(Column::Flagged)
            .column_as(Expr::col(Column::Id).count(), "sessions")
            .column_as(
                Func::sum(Into::<Expr>::into(running_ms)).cast_as("BIGINT"),
                "running_ms",
            )
            .filter(matching.clone())
            .filter(conditions::live())
            .group_by(Column::Status)
            .group_by(Column::ResourceType)
            .group_by(Column::Flagged)
            .into_tuple::<(i16, i16, bool, i64, i64)>();
        let ended = session::Entity::find()
            .filter(matching)
            .filter(Column::EndedAt.gte(ended_since));
        // The gateway count is about links, not sessions: only the filter's gateway narrows it.
        let mut gateways = gateway::Entity::find().filter(gateway::Column::Connected.eq(true));
        if let Some(gateway_id) = &filter.gateway_id {
            gateways = gateways.filter(gateway::Column::Id.eq(gateway_id.as_str()));
        }

        let txn = self.read_transaction().await?;
        let live_groups = live_groups.all(&txn).await?;
        let ended_since = ended.count(&txn).await?;
        let gateways_connected = gateways.count(&txn).await?;
        txn.commit().await?;

        let mut stats = SessionStats {
            ended_since,
            gateways_connected,
            ..SessionStats::default()
        };
        let mut by_type: BTreeMap<i16, u64> = BTreeMap::new();
        let mut running_ms: u64 = 0;
        for (status, resource_type, flagged, sessions, group_running_ms) in live_groups {
            let sessions = to_count(sessions);
            if status == enum_code(SessionStatus::Active) {
                stats.active += sessions;
            } else if status == enum_code(SessionStatus::Idle) {
                stats.idle += sessions;
            }
            if flagged {
                stats.flagged += sessions;
            }
            *by_type.entry(resource_type).or_default() += sessions;
            running_ms = running_ms.saturating_add(to_count(group_running_ms));
        }
        stats.total_live_duration_seconds = running_ms / 1000;
        stats.by_type = by_type
            .into_iter()
            .map(|(code, sessions)| {
                let resource_type = ResourceType::try_from(i32::from(code)).map_err(|_| {
                    ServiceError::internal(format!("sessions.resource_type holds unknown value {code}"))
                })?;
                Ok((resource_type, sessions))
            })
            .collect::<ServiceResult<_>>()?;
        Ok(stats)
    }

    async fn live_targets(&self, idle_only: bool, batch: usize, sink: &TargetSink) -> ServiceResult<()> {
        let mut live = conditions::live();
        if idle_only {
            live = live.add(Column::Status.eq(enum_code(SessionStatus::Idle)));
        }
        // Ordered as the live gateway index (gateway_id, id) is: read from it, rows come at once.
        let mut rows = session::Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::GatewayId)
            .column(Column::UserName)
            .filter(live)
            .order_by_asc(Column::GatewayId)
            .order_by_asc(Column::Id)
            .into_tuple::<(String, String, String)>()
            .stream(&self.db)
            .await?;
        let mut pending: Vec<SessionTarget> = Vec::with_capacity(batch);
        while let Some(row) = rows.next().await {
            let (id, gateway_id, user) = row?;
            let gateway_done = pending.last().is_some_and(|last| last.gateway_id != gateway_id);
            if pending.len() >= batch && gateway_done {
                let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                if sink.send(Ok(full)).await.is_err() {
                    return Ok(());
                }
            }
            pending.push(SessionTarget { id, gateway_id, user });
        }
        if !pending.is_empty() {
            let _ = sink.send(Ok(pending)).await;
        }
        Ok(())
    }

    async fn live_locations_of(&self, user: &str) -> ServiceResult<Vec<GeoLocation>> {
        // The location columns alone, without the current activity: a user's live sessions are
        // read on every admission.
        session::Entity::find()
            .filter(Column::UserName.eq(user))
            .filter(conditions::live())
            .into_partial_model::<session::LocationColumns>()
            .all(&self.db)
            .await?
            .into_iter()
            .map(session::LocationColumns::into_location)
            .collect()
    }

    async fn resolve(&self, selector: &Selector) -> ServiceResult<Resolution> {
        let live_where = |condition: Condition| {
            activity::sessions_now(JoinType::LeftJoin)
                .filter(condition)
                .filter(conditions::live())
                .order_by_asc(Column::StartedAt)
                .order_by_asc(Column::Id)
        };
        let query = match selector {
            Selector::Ids(ids) => return self.resolve_ids(ids).await,
            Selector::User(user) => live_where(Condition::all().add(Column::UserName.eq(user.as_str()))),
            Selector::Gateway(gateway) => live_where(Condition::all().add(Column::GatewayId.eq(gateway.as_str()))),
            Selector::Resource(resource) => {
                live_where(Condition::all().add(Column::ResourceName.eq(resource.as_str())))
            }
            Selector::All { idle_only: false } => live_where(Condition::all()),
            Selector::All { idle_only: true } => {
                live_where(Condition::all().add(Column::Status.eq(enum_code(SessionStatus::Idle))))
            }
            Selector::Device(device) => live_where(Condition::all().add(Column::Device.eq(device.as_str()))),
            Selector::Group(group) => {
                // Groups are a JSON array in one text column: SQL narrows to the rows whose text
                // holds the group's JSON string, then each row's decoded groups decide exactly
                // (SQLite's LIKE ignores ASCII case).
                let quoted = serde_json::to_string(group).map_err(ServiceError::internal)?;
                let pattern = LikeExpr::new(conditions::contains_pattern(&quoted)).escape(conditions::LIKE_ESCAPE);
                let rows = records(
                    live_where(Condition::all().add(Column::UserGroups.like(pattern)))
                        .all(&self.db)
                        .await?,
                )?;
                return Ok(Resolution {
                    live: rows
                        .into_iter()
                        .filter(|session| session.user_groups.contains(group))
                        .collect(),
                    ..Resolution::default()
                });
            }
            Selector::Cidr(network) => {
                // Addresses are text: an IPv4 network of a /8 or longer narrows by its leading
                // octets (and their IPv4-mapped IPv6 spelling); the parsed address decides.
                let mut narrow = Condition::all();
                if let Some(prefix) = network.ipv4_text_prefix() {
                    // "Contains" without its leading wildcard: "starts with".
                    let starts = |text: String| {
                        let mut pattern = conditions::contains_pattern(&text);
                        pattern.remove(0);
                        Column::ClientIp.like(LikeExpr::new(pattern).escape(conditions::LIKE_ESCAPE))
                    };
                    narrow = narrow.add(
                        Condition::any()
                            .add(starts(prefix.clone()))
                            .add(starts(format!("::ffff:{prefix}"))),
                    );
                }
                let rows = records(live_where(narrow).all(&self.db).await?)?;
                return Ok(Resolution {
                    live: rows
                        .into_iter()
                        .filter(|session| network.contains_text(&session.client_ip))
                        .collect(),
                    ..Resolution::default()
                });
            }
        };
        Ok(Resolution {
            live: records(query.all(&self.db).await?)?,
            ..Resolution::default()
        })
    }

    async fn gateway_connected(
        &self,
        gateway_id: &str,
        replica: &str,
        agent_version: &str,
        now: EpochMillis,
    ) -> ServiceResult<()> {
        use gateway::Column as G;
        let row = gateway::ActiveModel {
            id: sea_orm::Set(gateway_id.to_owned()),
            connected: sea_orm::Set(true),
            replica: sea_orm::Set(Some(replica.to_owned())),
            connected_at: sea_orm::Set(now),
            last_seen_at: sea_orm::Set(now),
            agent_version: sea_orm::Set(agent_version.to_owned()),
        };
        let txn = self.write_transaction().await?;
        gateway::Entity::insert(row)
            .on_conflict(
                OnConflict::column(G::Id)
                    .update_columns([G::Connected, G::Replica, G::ConnectedAt, G::LastSeenAt, G::AgentVersion])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        outbox::gateway_connected(&txn, gateway_id, replica, agent_version, now).await?;
        Ok(txn.commit().await?)
    }

    async fn gateway_disconnected(&self, gateway_id: &str, replica: &str, now: EpochMillis) -> ServiceResult<()> {
        use gateway::Column as G;
        // Matching the replica keeps a late "closed" from an old link from undoing a newer connect.
        gateway::Entity::update_many()
            .col_expr(G::Connected, Expr::val(false))
            .col_expr(G::Replica, Expr::val(Option::<String>::None))
            .col_expr(
                G::LastSeenAt,
                Func::greatest([Expr::col(G::LastSeenAt), Expr::val(now)]).into(),
            )
            .filter(G::Id.eq(gateway_id))
            .filter(G::Replica.eq(replica))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn list_gateways(&self, connected_only: bool) -> ServiceResult<Vec<GatewayRecord>> {
        let mut gateways = gateway::Entity::find().order_by_asc(gateway::Column::Id);
        if connected_only {
            gateways = gateways.filter(gateway::Column::Connected.eq(true));
        }
        let txn = self.read_transaction().await?;
        let gateways = gateways.all(&txn).await?;
        let live: HashMap<String, i64> = session::Entity::find()
            .select_only()
            .column(Column::GatewayId)
            .column_as(Expr::col(Column::Id).count(), "live")
            .filter(conditions::live())
            .group_by(Column::GatewayId)
            .into_tuple::<(String, i64)>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        txn.commit().await?;
        Ok(gateways
            .into_iter()
            .map(|gateway| {
                let live_sessions = live.get(&gateway.id).copied().map_or(0, to_count);
                gateway.into_record(live_sessions)
            })
            .collect())
    }

    async fn ping(&self) -> ServiceResult<()> {
        Ok(self.db.ping().await?)
    }

    async fn gateways_seen(&self, seen: &[(String, EpochMillis)]) -> ServiceResult<()> {
        self.write_gateways_seen(seen).await
    }

    async fn end_lost_gateways(
        &self,
        cutoff: EpochMillis,
        end: &SessionEnd,
        limit: u64,
    ) -> ServiceResult<super::LostGateways> {
        self.end_sessions_of_lost_gateways(cutoff, end, limit).await
    }

    async fn revive_lost_sessions(
        &self,
        gateway_id: &str,
        held: &[String],
        now: EpochMillis,
        idle_after_ms: i64,
    ) -> ServiceResult<Vec<SessionRecord>> {
        self.revive_sessions_of_returning_gateway(gateway_id, held, now, idle_after_ms)
            .await
    }
}
