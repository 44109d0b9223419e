//! Gateway liveness in SQL: batched "last heard from" writes, ending the sessions of gateways gone
//! silent, and bringing those sessions back when the gateway returns still holding them.

use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use vigil_runtime::{ServiceError, ServiceResult};

use super::{SqlStore, conditions, ending, records};
use crate::domain::{EndReason, EpochMillis, SessionEnd, SessionRecord, SessionStatus};
use crate::store::LostGateways;
use crate::store::entity::gateway;
use crate::store::entity::session::{self, enum_code};

/// Gateways per "last seen" statement: two bind parameters each in the CASE, well below SQLite's
/// 32,766 per statement.
const SEEN_CHUNK: usize = 1000;

/// `gateways.id` is one of `ids`, as one bind parameter (see `conditions::id_in`).
fn gateway_in(backend: DbBackend, ids: &[String]) -> ServiceResult<Expr> {
    let id = Expr::col((gateway::Entity, gateway::Column::Id));
    Ok(match backend {
        DbBackend::Postgres => id.eq(PgFunc::any(Expr::val(ids.to_vec()))),
        _ => {
            let json = serde_json::to_string(ids).map_err(ServiceError::internal)?;
            let list = Query::select()
                .expr(Expr::cust("value"))
                .from_function(Func::cust("json_each").arg(json), "ids")
                .to_owned();
            id.in_subquery(list)
        }
    })
}

impl SqlStore {
    pub(super) async fn write_gateways_seen(&self, seen: &[(String, EpochMillis)]) -> ServiceResult<()> {
        match self.backend() {
            DbBackend::Postgres => self.write_gateways_seen_postgres(seen).await,
            _ => self.write_gateways_seen_by_case(seen).await,
        }
    }

    /// PostgreSQL: every gateway in one statement, the pairs passed as two arrays and joined by id
    /// (one index probe each). A CASE over the ids, as on SQLite, costs a comparison per branch
    /// for every row: 10,000 gateways took 100 ms of the database's CPU every interval.
    async fn write_gateways_seen_postgres(&self, seen: &[(String, EpochMillis)]) -> ServiceResult<()> {
        // Only forward: a late batch must not move a newer time back; rows it would not move are
        // not written at all.
        const SQL: &str = r#"
            UPDATE gateways AS g
            SET last_seen_at = v.seen_at
            FROM UNNEST($1::text[], $2::bigint[]) AS v(id, seen_at)
            WHERE g.id = v.id AND v.seen_at > g.last_seen_at
        "#;
        if seen.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = seen.iter().map(|(id, _)| id.clone()).collect();
        let times: Vec<i64> = seen.iter().map(|(_, at)| *at).collect();
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, SQL, [ids.into(), times.into()]);
        self.db.execute_raw(statement).await?;
        Ok(())
    }

    /// SQLite (in process, no round trips): one UPDATE per chunk, each gateway's time picked by a
    /// CASE on its id.
    async fn write_gateways_seen_by_case(&self, seen: &[(String, EpochMillis)]) -> ServiceResult<()> {
        use gateway::Column as G;
        for chunk in seen.chunks(SEEN_CHUNK) {
            let Some(((first_id, first_at), rest)) = chunk.split_first() else {
                continue;
            };
            let mut heard_at = Expr::case(G::Id.eq(first_id.as_str()), Expr::val(*first_at));
            for (id, at) in rest {
                heard_at = heard_at.case(G::Id.eq(id.as_str()), Expr::val(*at));
            }
            let heard_at: Expr = heard_at.finally(Expr::col(G::LastSeenAt)).into();
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            gateway::Entity::update_many()
                // Only forward: a late batch must not move a newer time back.
                .col_expr(
                    G::LastSeenAt,
                    Func::greatest([Expr::col(G::LastSeenAt), heard_at]).into(),
                )
                .filter(gateway_in(self.backend(), &ids)?)
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn end_sessions_of_lost_gateways(
        &self,
        cutoff: EpochMillis,
        end: &SessionEnd,
        limit: u64,
    ) -> ServiceResult<LostGateways> {
        use gateway::Column as G;
        if limit == 0 {
            return Ok(LostGateways::default());
        }
        let has_live_sessions = Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(session::Entity)
                .and_where(Expr::col((session::Entity, session::Column::GatewayId)).equals((gateway::Entity, G::Id)))
                .and_where(Expr::col((session::Entity, session::Column::EndedAt)).is_null())
                .to_owned(),
        );
        // Silent for too long, and still something to do: a link to forget, or sessions to end.
        let mut candidates = gateway::Entity::find()
            .select_only()
            .column(G::Id)
            .filter(G::LastSeenAt.lt(cutoff))
            .filter(Condition::any().add(G::Connected.eq(true)).add(has_live_sessions))
            .order_by_asc(G::LastSeenAt)
            .limit(limit);
        if self.backend() == DbBackend::Postgres {
            // The gateway rows stay locked until the sessions are ended: a reconnection (which
            // writes the row first) waits, then reconciles against the ended sessions. Replicas
            // checking at once take different gateways. (SQLite's write lock does both.)
            candidates = candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let txn = self.write_transaction().await?;
        let gateway_ids: Vec<String> = candidates.into_tuple().all(&txn).await?;
        if gateway_ids.is_empty() {
            txn.commit().await?;
            return Ok(LostGateways::default());
        }
        gateway::Entity::update_many()
            .col_expr(G::Connected, Expr::val(false))
            .col_expr(G::Replica, Expr::val(Option::<String>::None))
            .filter(gateway_in(self.backend(), &gateway_ids)?)
            .filter(G::Connected.eq(true))
            .exec(&txn)
            .await?;
        let ended = ending(end)
            .filter(
                Expr::col((session::Entity, session::Column::GatewayId)).is_in(gateway_ids.iter().map(String::as_str)),
            )
            .exec_with_returning(&txn)
            .await?;
        // Decoded before committing, so a row that cannot be read back changes nothing.
        let ended = records(ended)?;
        super::activity::forget(&txn, &ended).await?;
        super::outbox::gateways_lost(&txn, &gateway_ids, end.ended_at).await?;
        super::outbox::sessions_ended(&txn, &ended).await?;
        txn.commit().await?;
        Ok(LostGateways { gateway_ids, ended })
    }

    pub(super) async fn revive_sessions_of_returning_gateway(
        &self,
        gateway_id: &str,
        held: &[String],
        now: EpochMillis,
        idle_after_ms: i64,
    ) -> ServiceResult<Vec<SessionRecord>> {
        use session::Column;
        if held.is_empty() {
            return Ok(Vec::new());
        }
        // The status `live_status` would give: IDLE once the last input is `idle_after_ms` old.
        let status = Expr::case(
            Expr::col(Column::LastActivityAt).gt(now.saturating_sub(idle_after_ms)),
            Expr::val(enum_code(SessionStatus::Active)),
        )
        .finally(Expr::val(enum_code(SessionStatus::Idle)));
        let txn = self.write_transaction().await?;
        let revived = session::Entity::update_many()
            .col_expr(Column::Status, status.into())
            .col_expr(Column::EndedAt, Expr::val(Option::<i64>::None))
            .col_expr(Column::EndReason, Expr::val(Option::<i16>::None))
            .col_expr(Column::EndDetail, Expr::val(""))
            .filter(conditions::id_in(self.backend(), held)?)
            .filter(Column::GatewayId.eq(gateway_id))
            .filter(Column::EndedAt.is_not_null())
            // Only what silence ended: a session ended by a kill, its user or the gateway stays ended.
            .filter(Column::EndReason.eq(enum_code(EndReason::GatewayLost)))
            .exec_with_returning(&txn)
            .await?;
        // Live again: their activity is kept apart again, from the values their end folded in.
        let revived = records(revived)?;
        super::activity::insert(&txn, &revived).await?;
        txn.commit().await?;
        Ok(revived)
    }
}
