//! WHERE pieces shared by the store's queries: open commands, "in this list" in one bind
//! parameter, and the list's keyset cursor.

use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, IntoColumnRef, Query};
use sea_orm::{ColumnTrait, Condition, DbBackend};
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{DeliveryState, EpochMillis};
use crate::store::entity::{command, enum_code, termination};

/// Open commands (PENDING or DELIVERED). The numbers are written into the SQL, not bound, and
/// spelled like the partial indexes' predicate: a planner can only prove that a query is covered
/// by a partial index (or, for `ON CONFLICT`, infer the unique one) from literal values.
pub fn open() -> Expr {
    Expr::col((command::Entity, command::Column::State)).is_in([
        Expr::Constant(enum_code(DeliveryState::Pending).into()),
        Expr::Constant(enum_code(DeliveryState::Delivered).into()),
    ])
}

/// `column` is one of `values`, with the whole list as a single bind parameter (a PostgreSQL
/// array, or a JSON array SQLite unpacks with `json_each`): no limit on the list's length and one
/// prepared statement whatever the length.
pub fn is_in(backend: DbBackend, column: impl IntoColumnRef, values: &[String]) -> ServiceResult<Expr> {
    let column = Expr::col(column);
    Ok(match backend {
        DbBackend::Postgres => column.eq(PgFunc::any(Expr::val(values.to_vec()))),
        _ => {
            let json = serde_json::to_string(values).map_err(ServiceError::internal)?;
            let list = Query::select()
                .expr(Expr::cust("value"))
                .from_function(Func::cust("json_each").arg(json), "list")
                .to_owned();
            column.in_subquery(list)
        }
    })
}

/// Terminations strictly after `(created_at, id)` in the list's newest-first order. Written out
/// as `created_at <= c AND (created_at < c OR (created_at = c AND id < i))`: the redundant first
/// bound is what lets both planners start the `(created_at, id)` index scan at the cursor.
pub fn before(created_at: EpochMillis, id: &str) -> Condition {
    use termination::Column;
    Condition::all().add(Column::CreatedAt.lte(created_at)).add(
        Condition::any().add(Column::CreatedAt.lt(created_at)).add(
            Condition::all()
                .add(Column::CreatedAt.eq(created_at))
                .add(Column::Id.lt(id)),
        ),
    )
}
