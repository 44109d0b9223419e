//! WHERE pieces shared by the store's queries.

use sea_orm::DbBackend;
use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, IntoColumnRef, Query};
use vigil_runtime::{ServiceError, ServiceResult};

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
