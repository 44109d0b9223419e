//! The `termination_commands` table and the indexes behind delivery: open commands by gateway,
//! due commands, and the unique index that lets a session have one open command at most.

use sea_orm_migration::prelude::*;

use super::m20261123_100001_create_terminations::Terminations;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `DeliveryState::Pending` and `DeliveryState::Delivered`'s proto numbers, frozen here: a
/// migration must not change meaning when the code around it does.
const STATE_PENDING: i16 = 1;
const STATE_DELIVERED: i16 = 2;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(commands_table()).await?;
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TerminationCommands::Table).if_exists().to_owned())
            .await
    }
}

fn commands_table() -> TableCreateStatement {
    use TerminationCommands::*;
    let text = |column: TerminationCommands| ColumnDef::new(column).text().not_null().to_owned();
    let bigint = |column: TerminationCommands| ColumnDef::new(column).big_integer().not_null().to_owned();
    let smallint = |column: TerminationCommands| ColumnDef::new(column).small_integer().not_null().to_owned();
    sea_query::Table::create()
        .table(Table)
        .if_not_exists()
        .col(ColumnDef::new(Id).text().not_null().primary_key())
        .col(text(TerminationId))
        .col(text(SessionId))
        .col(text(GatewayId))
        .col(text(UserName))
        .col(smallint(Reason))
        .col(text(UserMessage))
        .col(smallint(State))
        .col(text(Detail))
        .col(bigint(Attempts))
        .col(bigint(CreatedAt))
        .col(ColumnDef::new(NextAttemptAt).big_integer().null())
        .col(ColumnDef::new(DeliveredAt).big_integer().null())
        .col(ColumnDef::new(AcknowledgedAt).big_integer().null())
        .foreign_key(
            ForeignKey::create()
                .name("fk_termination_commands_termination")
                .from(Table, TerminationId)
                .to(Terminations::Table, Terminations::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

/// Open commands (PENDING, DELIVERED) are the working set, a small part of a table that keeps
/// every command ever sent: the delivery indexes are partial, so they stay small and cheap to
/// update. Queries spell the predicate with the same literal numbers so the planners use them.
fn indexes() -> Vec<IndexCreateStatement> {
    use TerminationCommands::*;
    let index = |name: &str, columns: &[TerminationCommands]| {
        let mut index = Index::create();
        index.name(name).table(Table).if_not_exists();
        for column in columns {
            index.col(*column);
        }
        index
    };
    let open = |name: &str, columns: &[TerminationCommands]| {
        index(name, columns)
            .and_where(Expr::col(State).is_in([STATE_PENDING, STATE_DELIVERED]))
            .to_owned()
    };
    vec![
        // The same kill twice ends a session once: at most one open command per session, enforced
        // by the database so that it holds when two terminations race.
        open("uq_termination_commands_open_session", &[SessionId])
            .unique()
            .to_owned(),
        // What to (re)send to a gateway when its link comes up, oldest first.
        open("idx_termination_commands_open_gateway", &[GatewayId, CreatedAt, Id]),
        // The redelivery sweep: open commands whose next attempt is due, longest due first.
        open("idx_termination_commands_due", &[NextAttemptAt, Id]),
        // A termination's commands, and its counts per state (served from the index alone).
        index("idx_termination_commands_termination", &[TerminationId, State]),
        // "Which terminations covered this session", the list's filter (over every state; the
        // unique index above serves the open-command lookups).
        index("idx_termination_commands_session", &[SessionId]),
    ]
}

#[derive(DeriveIden, Clone, Copy)]
enum TerminationCommands {
    Table,
    Id,
    TerminationId,
    SessionId,
    GatewayId,
    UserName,
    Reason,
    UserMessage,
    State,
    Detail,
    Attempts,
    CreatedAt,
    NextAttemptAt,
    DeliveredAt,
    AcknowledgedAt,
}
