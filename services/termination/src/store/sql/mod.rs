//! [`SqlTerminationStore`]: the [`TerminationStore`] on sea-orm, for PostgreSQL and SQLite alike.
//!
//! Queries are built with sea-orm/sea-query so one code path serves both backends; the only
//! hand-written SQL is the batched report update (`reports.rs`). Methods that run more than one
//! statement run them in one transaction.

mod conditions;
mod outbox;
mod record;
mod reports;

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    AccessMode, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, IsolationLevel, QueryFilter, QueryOrder, QuerySelect, TransactionOptions, TransactionTrait,
};
use vigil_runtime::{ServiceError, ServiceResult};

use super::TerminationStore;
use super::entity::{command, enum_code, termination};
use super::migration::Migrator;
use crate::domain::{
    CommandRecord, CommandReport, DeliveryCounts, DeliveryState, EpochMillis, TerminationPage, TerminationQuery,
    TerminationRecord,
};

/// How long a report about a command that does not exist is kept waiting for its row. A
/// termination is recorded within its request's deadline; anything older was never recorded.
const EARLY_REPORT_RETENTION_MS: i64 = 10 * 60 * 1000;

/// The largest page a list returns.
const MAX_PAGE: u64 = 1000;

/// Terminations and their commands in a SQL database (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SqlTerminationStore {
    db: DatabaseConnection,
}

impl SqlTerminationStore {
    /// A store on `db`. Does not touch the schema: call [`SqlTerminationStore::migrate`] (or run
    /// the migrations elsewhere) first. Fails on a backend other than PostgreSQL or SQLite ≥ 3.35.
    pub async fn new(db: DatabaseConnection) -> ServiceResult<Self> {
        vigil_runtime::database::check_backend(&db, "termination service").await?;
        Ok(Self { db })
    }

    /// Applies the migrations that have not been applied yet, under the lock every Vigil service
    /// migrates under (`vigil_runtime::database::migrate_locked`): replicas starting at once wait
    /// for each other, then find nothing to do.
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
    /// instead of waiting when another connection wrote in between. Holding the single write lock
    /// from the first read is also what makes `record` and `claim_due` race-free there.
    async fn write_transaction(&self) -> ServiceResult<DatabaseTransaction> {
        vigil_runtime::database::begin_write(&self.db).await
    }

    /// A transaction that only reads, seeing one snapshot throughout (a page and its counts
    /// agree). SQLite's transactions are snapshots already and it takes no isolation options.
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

    /// Per-state counts of the commands of each of `termination_ids` (absent: no commands), in one
    /// grouped aggregate.
    async fn counts_of(
        &self,
        db: &impl ConnectionTrait,
        termination_ids: &[String],
    ) -> ServiceResult<HashMap<String, DeliveryCounts>> {
        use command::Column;
        if termination_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let groups: Vec<(String, i16, i64)> = command::Entity::find()
            .select_only()
            .column(Column::TerminationId)
            .column(Column::State)
            .column_as(Expr::col(Column::State).count(), "commands")
            .filter(conditions::is_in(
                self.backend(),
                (command::Entity, Column::TerminationId),
                termination_ids,
            )?)
            .group_by(Column::TerminationId)
            .group_by(Column::State)
            .into_tuple()
            .all(db)
            .await?;
        let mut counts: HashMap<String, DeliveryCounts> = HashMap::with_capacity(termination_ids.len());
        for (termination_id, state, commands) in groups {
            tally(counts.entry(termination_id).or_default(), state, commands)?;
        }
        Ok(counts)
    }
}

/// Adds `commands` in `state` to `counts`.
fn tally(counts: &mut DeliveryCounts, state: i16, commands: i64) -> ServiceResult<()> {
    let slot = match DeliveryState::try_from(i32::from(state)) {
        Ok(DeliveryState::Pending) => &mut counts.pending,
        Ok(DeliveryState::Delivered) => &mut counts.delivered,
        Ok(DeliveryState::Acknowledged) => &mut counts.acknowledged,
        Ok(DeliveryState::Failed) => &mut counts.failed,
        Ok(DeliveryState::AlreadyEnded) => &mut counts.already_ended,
        Ok(DeliveryState::Unspecified) | Err(_) => {
            return Err(ServiceError::internal(format!(
                "termination_commands.state holds unexpected value {state}"
            )));
        }
    };
    *slot = slot.saturating_add(u32::try_from(commands).unwrap_or(u32::MAX));
    Ok(())
}

/// A termination recording this many commands or more analyzes the command tables with it.
const ANALYZE_AFTER_COMMANDS: usize = 10_000;

fn commands(models: Vec<command::Model>) -> ServiceResult<Vec<CommandRecord>> {
    models.into_iter().map(command::Model::into_record).collect()
}

impl SqlTerminationStore {
    /// The follow-up of a recorded termination of a chunk of commands or fewer (a kill): applies
    /// the kept reports about its commands, `ids`. Only theirs: every other kept report is its own
    /// record's follow-up, or its keeper's (see [`reports::reconcile`]), and the redelivery
    /// scan's. A kill's reports are rarely early, so the usual cost is one read, outside any
    /// transaction.
    async fn settle_early_reports_about(&self, ids: &[String]) -> ServiceResult<u64> {
        if reports::kept_about(&self.db, ids).await?.is_empty() {
            return Ok(0);
        }
        let txn = self.write_transaction().await?;
        let kept = reports::kept_about(&txn, ids).await?;
        let changed = reconcile(&txn, &kept).await?;
        txn.commit().await?;
        Ok(changed)
    }

    /// Applies every kept report whose command exists by now: in chunks by id, a transaction each
    /// (a walk over 100,000 reports after an end-all holds the locks of a thousand commands at a
    /// time, and what it did stays done if it stops).
    async fn settle_kept_reports(&self) -> ServiceResult<u64> {
        let mut changed = 0;
        let mut after = String::new();
        loop {
            let txn = self.write_transaction().await?;
            let kept = reports::kept_after(&txn, &after, reports::RECONCILE_CHUNK).await?;
            changed += reconcile(&txn, &kept).await?;
            txn.commit().await?;
            match kept.last() {
                Some(last) if kept.len() as u64 == reports::RECONCILE_CHUNK => after.clone_from(&last.command_id),
                _ => return Ok(changed),
            }
        }
    }
}

/// Applies kept reports (see [`reports::reconcile`]) and writes the events of what they changed,
/// in `txn`. Returns how many commands changed.
async fn reconcile(txn: &DatabaseTransaction, kept: &[reports::EarlyReport]) -> ServiceResult<u64> {
    let (delivered, settled) = reports::reconcile(txn, kept).await?;
    outbox::reported(txn, &delivered, &settled).await?;
    Ok((delivered.len() + settled.len()) as u64)
}

#[async_trait]
impl TerminationStore for SqlTerminationStore {
    async fn record(
        &self,
        termination: &TerminationRecord,
        commands: &[CommandRecord],
    ) -> ServiceResult<Vec<CommandRecord>> {
        let txn = self.write_transaction().await?;
        let stored = record::record(&txn, termination, commands).await?;
        if self.backend() == DbBackend::Postgres && stored.len() >= ANALYZE_AFTER_COMMANDS {
            // Statistics from before a bulk record of this size (autovacuum's analyze comes a
            // minute later, or never where it is off) describe a table of a few commands, and with
            // them each batch of acknowledgements joined to the commands could be planned as a scan
            // of the whole table. Analyzed in this transaction, the statistics are fresh when the
            // first report is applied. (ANALYZE counts this transaction's own rows.)
            txn.execute_unprepared("ANALYZE termination_commands, termination_early_reports")
                .await?;
        }
        outbox::requested(&txn, termination, &stored).await?;
        txn.commit().await?;
        // Reports that beat these rows to the database are applied now, off the caller's path.
        // Those of a kill by their ids; an end-all's (more than a chunk) by walking them all.
        let store = self.clone();
        let ids: Option<Vec<String>> = (stored.len() as u64 <= reports::RECONCILE_CHUNK)
            .then(|| stored.iter().map(|command| command.id.clone()).collect());
        tokio::spawn(async move {
            let settled = match ids {
                Some(ids) => store.settle_early_reports_about(&ids).await,
                None => store.settle_kept_reports().await,
            };
            if let Err(error) = settled {
                tracing::warn!(%error, "could not apply early reports; the redelivery loop will");
            }
        });
        Ok(stored)
    }

    async fn get(&self, id: &str) -> ServiceResult<Option<(TerminationRecord, Vec<CommandRecord>)>> {
        let txn = self.read_transaction().await?;
        let Some(row) = termination::Entity::find_by_id(id).one(&txn).await? else {
            txn.commit().await?;
            return Ok(None);
        };
        let rows = command::Entity::find()
            .filter(command::Column::TerminationId.eq(id))
            .order_by_asc(command::Column::CreatedAt)
            .order_by_asc(command::Column::Id)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(Some((row.into_record()?, commands(rows)?)))
    }

    async fn list(&self, query: &TerminationQuery) -> ServiceResult<TerminationPage> {
        use termination::Column;
        if !(1..=MAX_PAGE).contains(&query.limit) {
            return Err(ServiceError::invalid(format!(
                "page size must be between 1 and {MAX_PAGE}"
            )));
        }
        let mut filter = Condition::all();
        if let Some(actor) = &query.actor {
            filter = filter.add(Column::Actor.eq(actor.as_str()));
        }
        if let Some(reason) = query.reason {
            filter = filter.add(Column::Reason.eq(enum_code(reason)));
        }
        if let Some(since) = query.since {
            filter = filter.add(Column::CreatedAt.gte(since));
        }
        if let Some(session_id) = &query.session_id {
            let covering = Query::select()
                .column(command::Column::TerminationId)
                .from(command::Entity)
                .and_where(command::Column::SessionId.eq(session_id.as_str()))
                .to_owned();
            filter = filter.add(Column::Id.in_subquery(covering));
        }
        if let Some((created_at, id)) = &query.before {
            filter = filter.add(conditions::before(*created_at, id));
        }
        let page = termination::Entity::find()
            .filter(filter)
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            // One more than asked: whether it comes back says whether there is a next page.
            .limit(query.limit + 1);

        let txn = self.read_transaction().await?;
        let mut rows = page.all(&txn).await?;
        let more = rows.len() as u64 > query.limit;
        rows.truncate(query.limit as usize);
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let mut counts = self.counts_of(&txn, &ids).await?;
        txn.commit().await?;

        let next = match rows.last() {
            Some(last) if more => Some((last.created_at, last.id.clone())),
            _ => None,
        };
        let terminations = rows
            .into_iter()
            .map(|row| {
                let counts = counts.remove(&row.id).unwrap_or_default();
                Ok((row.into_record()?, counts))
            })
            .collect::<ServiceResult<_>>()?;
        Ok(TerminationPage { terminations, next })
    }

    async fn open_commands_for_gateway(&self, gateway_id: &str) -> ServiceResult<Vec<CommandRecord>> {
        let rows = command::Entity::find()
            .filter(command::Column::GatewayId.eq(gateway_id))
            .filter(conditions::open())
            .order_by_asc(command::Column::CreatedAt)
            .order_by_asc(command::Column::Id)
            .all(&self.db)
            .await?;
        commands(rows)
    }

    async fn apply_reports(&self, reports: &[CommandReport]) -> ServiceResult<u64> {
        let plan = reports::plan(reports);
        if plan.deliveries.is_empty() && plan.settlements.is_empty() {
            return Ok(0);
        }
        let txn = self.write_transaction().await?;
        reports::lock_commands(&txn, &plan).await?;
        // Deliveries first: a command delivered and answered in the same batch keeps both times.
        let delivered: HashSet<String> = reports::deliver(&txn, &plan.deliveries).await?.into_iter().collect();
        let settled: HashSet<String> = reports::settle(&txn, &plan.settlements).await?.into_iter().collect();
        outbox::reported(&txn, &delivered, &settled).await?;
        // What changed nothing may be about a command whose termination is still being recorded
        // (the kill is published while it is written): kept, and applied once the row exists. Each
        // kind on its own: the record may commit between the two statements, so that the answer
        // applies and the delivery before it did not.
        let early = reports::unmatched(&plan, &delivered, &settled);
        reports::keep(&txn, &early, crate::now_millis()).await?;
        txn.commit().await?;
        let mut changed = delivered.union(&settled).count() as u64;
        // The record of some of them may have committed meanwhile: theirs are applied now. Only
        // theirs: the others are their own keeper's or record's follow-up (and the redelivery
        // scan's).
        let kept: Vec<String> = early.into_iter().map(|row| row.command_id).collect();
        for ids in kept.chunks(reports::RECONCILE_CHUNK as usize) {
            let txn = self.write_transaction().await?;
            let kept = reports::kept_about(&txn, ids).await?;
            changed += reconcile(&txn, &kept).await?;
            txn.commit().await?;
        }
        Ok(changed)
    }

    async fn claim_due(
        &self,
        now: EpochMillis,
        limit: u64,
        retry_after: &(dyn Fn(u32) -> i64 + Send + Sync),
    ) -> ServiceResult<Vec<CommandRecord>> {
        use command::Column;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let due = Condition::all()
            .add(conditions::open())
            .add(Column::NextAttemptAt.lte(now));
        let mut candidates = command::Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::Attempts)
            .filter(due.clone())
            .order_by_asc(Column::NextAttemptAt)
            .order_by_asc(Column::Id)
            .limit(limit);
        if self.backend() == DbBackend::Postgres {
            // Replicas claiming at the same time take different rows instead of queueing on the
            // same ones. (SQLite has a single writer: its IMMEDIATE transaction is the lock.)
            candidates = candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }

        // Two steps rather than `UPDATE ... WHERE id IN (SELECT ... LIMIT n)`: PostgreSQL may run
        // such a subquery more than once per statement, and with SKIP LOCKED each run can pick
        // other rows. And the next attempt's delay depends on each row's attempts: one UPDATE per
        // distinct value (a handful in practice).
        let txn = self.write_transaction().await?;
        let candidates: Vec<(String, i64)> = candidates.into_tuple().all(&txn).await?;
        let order: HashMap<String, usize> = candidates
            .iter()
            .enumerate()
            .map(|(position, (id, _))| (id.clone(), position))
            .collect();
        let mut by_attempts: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (id, attempts) in candidates {
            by_attempts.entry(attempts).or_default().push(id);
        }
        let mut claimed = Vec::with_capacity(order.len());
        for (attempts, ids) in by_attempts {
            let next_attempts = u32::try_from(attempts.saturating_add(1)).unwrap_or(u32::MAX);
            let next_attempt_at = now.saturating_add(retry_after(next_attempts));
            // The rows are locked (PostgreSQL) or the database is (SQLite) by now; repeating the
            // conditions keeps the update correct even so.
            let rows = command::Entity::update_many()
                .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
                .col_expr(Column::NextAttemptAt, Expr::val(next_attempt_at))
                .filter(conditions::is_in(self.backend(), (command::Entity, Column::Id), &ids)?)
                .filter(due.clone())
                .filter(Column::Attempts.eq(attempts))
                .exec_with_returning(&txn)
                .await?;
            claimed.extend(rows);
        }
        txn.commit().await?;
        claimed.sort_by_key(|row| order.get(&row.id).copied().unwrap_or(usize::MAX));
        commands(claimed)
    }

    async fn counts(&self, termination_id: &str) -> ServiceResult<DeliveryCounts> {
        let mut counts = self.counts_of(&self.db, &[termination_id.to_owned()]).await?;
        Ok(counts.remove(termination_id).unwrap_or_default())
    }

    async fn settle_early_reports(&self, now: EpochMillis) -> ServiceResult<u64> {
        reports::forget_expired(&self.db, now.saturating_sub(EARLY_REPORT_RETENTION_MS)).await?;
        self.settle_kept_reports().await
    }

    async fn ping(&self) -> ServiceResult<()> {
        Ok(self.db.ping().await?)
    }
}
