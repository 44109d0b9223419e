//! The free-text column of sessions recorded before country names and codes were searched: their
//! `search_text` (and its copy in `session_search`, which the index serves) is written again from
//! the row's own fields, so "Bhutan" finds the sessions of before the upgrade too.
//!
//! The text is computed here by the same function as on insert (`entity::session::search_text_of`),
//! not by SQL's `lower()`, whose idea of case differs (SQLite folds ASCII only). Rows are read by
//! id in pages and only those whose text changes are written, one statement per page and table.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;
use serde::Serialize;

use crate::store::entity::session::search_text_of;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Sessions read per page.
const PAGE: u64 = 1_000;

/// A session whose text changes.
#[derive(Serialize)]
struct Rewrite {
    id: String,
    text: String,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let mut after = String::new();
        loop {
            let (rewrites, last) = page(db, backend, &after).await?;
            rewrite(db, backend, &rewrites).await?;
            match last {
                Some(last) => after = last,
                None => return Ok(()),
            }
        }
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The longer text is what the code of either version searches correctly: nothing to undo.
        Ok(())
    }
}

/// The sessions after `after` (by id) whose text changes, and the page's last id (`None` when
/// there are no more).
async fn page(
    db: &SchemaManagerConnection<'_>,
    backend: DbBackend,
    after: &str,
) -> Result<(Vec<Rewrite>, Option<String>), DbErr> {
    let placeholder = if backend == DbBackend::Postgres { "$1" } else { "?1" };
    let sql = format!(
        "SELECT id, user_name, resource_name, device, client_ip, location_city, location_country_name, \
         location_country_code, gateway_id, search_text FROM sessions WHERE id > {placeholder} \
         ORDER BY id LIMIT {PAGE}"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [after.into()]))
        .await?;
    let mut last = None;
    let mut rewrites = Vec::new();
    for row in &rows {
        let text = |index: usize| row.try_get_by_index::<String>(index);
        let id = text(0)?;
        let fields = [
            text(1)?,
            text(2)?,
            text(3)?,
            text(4)?,
            text(5)?,
            text(6)?,
            text(7)?,
            text(8)?,
        ];
        let wanted = search_text_of(fields.each_ref().map(String::as_str));
        if wanted != text(9)? {
            rewrites.push(Rewrite {
                id: id.clone(),
                text: wanted,
            });
        }
        last = Some(id);
    }
    Ok((rewrites, last))
}

/// Writes the new texts into `sessions` and `session_search`.
async fn rewrite(db: &SchemaManagerConnection<'_>, backend: DbBackend, rewrites: &[Rewrite]) -> Result<(), DbErr> {
    if rewrites.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(rewrites).map_err(|error| DbErr::Custom(error.to_string()))?;
    for (table, key) in [("sessions", "id"), ("session_search", "session_id")] {
        let sql = if backend == DbBackend::Postgres {
            format!(
                "UPDATE {table} AS t SET search_text = r.text \
                 FROM json_to_recordset($1::json) AS r(id text, text text) WHERE t.{key} = r.id"
            )
        } else {
            format!(
                "UPDATE {table} AS t SET search_text = r.text FROM (SELECT json_extract(value, '$.id') AS id, \
                 json_extract(value, '$.text') AS text FROM json_each(?1)) AS r WHERE t.{key} = r.id"
            )
        };
        db.execute_raw(Statement::from_sql_and_values(backend, sql, [json.clone().into()]))
            .await?;
    }
    Ok(())
}
