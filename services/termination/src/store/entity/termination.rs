//! The `terminations` table: the audit trail, one row per request to end sessions.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use vigil_runtime::{ServiceError, ServiceResult};

use super::{decode_enum, enum_code};
use crate::domain::{EndReason, SelectorRecord, TerminationRecord};

const TABLE: &str = "terminations";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "terminations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub actor: String,
    /// `ids`, `user`, `gateway`, `resource`, `group`, `device`, `cidr` or `all`.
    pub selector_kind: String,
    /// A JSON array of session ids for `ids`; the name for `user`, `gateway`, `resource`, `group`
    /// and `device`; the network for `cidr`; `idle` or empty for `all`.
    pub selector_value: String,
    pub reason: i16,
    pub user_message: String,
    pub note: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

const KIND_IDS: &str = "ids";
const KIND_USER: &str = "user";
const KIND_GATEWAY: &str = "gateway";
const KIND_RESOURCE: &str = "resource";
const KIND_ALL: &str = "all";
const KIND_GROUP: &str = "group";
const KIND_DEVICE: &str = "device";
const KIND_CIDR: &str = "cidr";
/// `selector_value` of an `all` selector limited to idle sessions.
const ALL_IDLE: &str = "idle";

/// The (`selector_kind`, `selector_value`) columns of a selector: readable in SQL as they are.
pub fn selector_columns(selector: &SelectorRecord) -> ServiceResult<(String, String)> {
    Ok(match selector {
        SelectorRecord::Ids(ids) => (
            KIND_IDS.to_owned(),
            serde_json::to_string(ids)
                .map_err(|error| ServiceError::internal(format!("encoding selector ids: {error}")))?,
        ),
        SelectorRecord::User(user) => (KIND_USER.to_owned(), user.clone()),
        SelectorRecord::Gateway(gateway) => (KIND_GATEWAY.to_owned(), gateway.clone()),
        SelectorRecord::Resource(resource) => (KIND_RESOURCE.to_owned(), resource.clone()),
        SelectorRecord::All { idle_only } => (KIND_ALL.to_owned(), if *idle_only { ALL_IDLE } else { "" }.to_owned()),
        SelectorRecord::Group(group) => (KIND_GROUP.to_owned(), group.clone()),
        SelectorRecord::Device(device) => (KIND_DEVICE.to_owned(), device.clone()),
        SelectorRecord::Cidr(cidr) => (KIND_CIDR.to_owned(), cidr.clone()),
    })
}

fn selector_record(kind: &str, value: String) -> ServiceResult<SelectorRecord> {
    Ok(match kind {
        KIND_IDS => SelectorRecord::Ids(
            serde_json::from_str(&value)
                .map_err(|error| ServiceError::internal(format!("{TABLE}.selector_value is not valid: {error}")))?,
        ),
        KIND_USER => SelectorRecord::User(value),
        KIND_GATEWAY => SelectorRecord::Gateway(value),
        KIND_RESOURCE => SelectorRecord::Resource(value),
        KIND_ALL => SelectorRecord::All {
            idle_only: value == ALL_IDLE,
        },
        KIND_GROUP => SelectorRecord::Group(value),
        KIND_DEVICE => SelectorRecord::Device(value),
        KIND_CIDR => SelectorRecord::Cidr(value),
        other => {
            return Err(ServiceError::internal(format!(
                "{TABLE}.selector_kind holds unknown value {other:?}"
            )));
        }
    })
}

/// A row to insert for `termination`.
pub fn active_model(termination: &TerminationRecord) -> ServiceResult<ActiveModel> {
    let (selector_kind, selector_value) = selector_columns(&termination.selector)?;
    Ok(ActiveModel {
        id: Set(termination.id.clone()),
        actor: Set(termination.actor.clone()),
        selector_kind: Set(selector_kind),
        selector_value: Set(selector_value),
        reason: Set(enum_code(termination.reason)),
        user_message: Set(termination.user_message.clone()),
        note: Set(termination.note.clone()),
        created_at: Set(termination.created_at),
    })
}

impl Model {
    /// The domain record; fails only if the row holds values no version of this code writes.
    pub fn into_record(self) -> ServiceResult<TerminationRecord> {
        Ok(TerminationRecord {
            selector: selector_record(&self.selector_kind, self.selector_value)?,
            reason: decode_enum::<EndReason>(self.reason, TABLE, "reason")?,
            id: self.id,
            actor: self.actor,
            user_message: self.user_message,
            note: self.note,
            created_at: self.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_survives_its_columns() {
        let selectors = [
            SelectorRecord::Ids(vec!["a".to_owned(), "b\"quoted\"".to_owned()]),
            SelectorRecord::Ids(Vec::new()),
            SelectorRecord::User("alice".to_owned()),
            SelectorRecord::Gateway("gw-1".to_owned()),
            SelectorRecord::Resource("db".to_owned()),
            SelectorRecord::All { idle_only: true },
            SelectorRecord::All { idle_only: false },
            SelectorRecord::Group("sre".to_owned()),
            SelectorRecord::Device("alice-mbp".to_owned()),
            SelectorRecord::Cidr("203.0.113.0/24".to_owned()),
        ];
        for selector in selectors {
            let (kind, value) = selector_columns(&selector).unwrap();
            assert_eq!(selector_record(&kind, value).unwrap(), selector);
        }
    }

    #[test]
    fn the_columns_read_plainly() {
        assert_eq!(
            selector_columns(&SelectorRecord::Ids(vec!["s1".to_owned()])).unwrap(),
            ("ids".to_owned(), r#"["s1"]"#.to_owned())
        );
        assert_eq!(
            selector_columns(&SelectorRecord::All { idle_only: true }).unwrap(),
            ("all".to_owned(), "idle".to_owned())
        );
        assert!(selector_record("everything", String::new()).is_err());
    }
}
