//! DynamoDB adapters: properties + documents, run log, lease, settings; and table creation.

mod lease;
mod properties;
mod quarantine;
mod runs;
mod schema;
mod settings;
mod stats;
mod webhooks;
mod writes;

pub use lease::DynamoLease;
pub use properties::DynamoProperties;
pub use runs::DynamoRunLog;
pub use schema::DynamoSchema;
pub use settings::DynamoSettings;
pub use stats::DynamoStats;
pub use webhooks::DynamoWebhooks;

use super::port_err;
use super::tables::{self, TableDef};
use crate::config::Tables;
use crate::ports::*;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ConsumedCapacity};
use std::collections::HashMap;
use std::time::Duration;

/// How long finished runs stay in the log (TTL).
pub const RUN_RETENTION: Duration = Duration::from_secs(90 * 86_400);

pub(super) fn units(c: Option<&ConsumedCapacity>) -> f64 {
    c.and_then(|c| c.capacity_units()).unwrap_or(0.0)
}

pub(super) fn n(v: impl ToString) -> AV {
    AV::N(v.to_string())
}
pub(super) fn s(v: impl Into<String>) -> AV {
    AV::S(v.into())
}

pub(super) fn get_n<T: std::str::FromStr>(item: &HashMap<String, AV>, k: &str) -> Option<T> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|x| x.parse().ok())
}
pub(super) fn get_s(item: &HashMap<String, AV>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

/// A value kept as compressed JSON in a binary attribute (shapes: read and written whole).
pub(super) fn pack<T: serde::Serialize>(what: &str, v: &T) -> PortResult<AV> {
    let invalid = |e: String| PortError::new(format!("encode {what}"), PortErrorKind::Invalid, e);
    let json = serde_json::to_vec(v).map_err(|e| invalid(e.to_string()))?;
    let z = crate::domain::document::compress(&json).map_err(|e| invalid(e.to_string()))?;
    Ok(AV::B(aws_sdk_dynamodb::primitives::Blob::new(z)))
}

pub(super) fn unpack<T: serde::de::DeserializeOwned>(what: &str, av: &AV) -> PortResult<T> {
    let invalid = |e: String| PortError::new(format!("decode {what}"), PortErrorKind::Invalid, e);
    let z = av
        .as_b()
        .map_err(|_| invalid("not a binary attribute".into()))?;
    let json =
        crate::domain::document::decompress(z.as_ref()).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| invalid(e.to_string()))
}

/// Waits before retrying unprocessed batch items (throttling), at most 8 times.
pub(super) async fn backoff_unprocessed(attempt: &mut u32, call: &str) -> PortResult<()> {
    *attempt += 1;
    if *attempt > 8 {
        return Err(PortError::new(
            call,
            PortErrorKind::Unavailable,
            "unprocessed items after 8 retries",
        ));
    }
    tokio::time::sleep(Duration::from_millis(50 << (*attempt).min(6))).await;
    Ok(())
}

/// BatchGetItem refuses duplicate keys: ask for each id once, in order.
pub(super) fn unique(ids: &[i64]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Creates the tables (and TTL) if they do not exist; used by the local bootstrap and tests.
pub async fn ensure_tables(client: &Client, names: &Tables) -> PortResult<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType as KT,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    let attr = |k: tables::Key| {
        AttributeDefinition::builder()
            .attribute_name(k.name)
            .attribute_type(match k.kind {
                tables::KeyType::S => ScalarAttributeType::S,
                tables::KeyType::N => ScalarAttributeType::N,
            })
            .build()
            .map_err(|e| PortError::new("CreateTable", PortErrorKind::Invalid, e.to_string()))
    };
    let key = |name: &str, t: KT| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .map_err(|e| PortError::new("CreateTable", PortErrorKind::Invalid, e.to_string()))
    };
    for (def, name) in [
        (tables::PROPERTIES, &names.properties),
        (tables::DOCUMENTS, &names.documents),
        (tables::SYNC_LOGS, &names.sync_logs),
        (tables::SETTINGS, &names.settings),
    ] {
        if client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .is_ok()
        {
            continue;
        }
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(def.pk)?)
            .key_schema(key(def.pk.name, KT::Hash)?);
        if let Some(sk) = def.sk {
            req = req
                .attribute_definitions(attr(sk)?)
                .key_schema(key(sk.name, KT::Range)?);
        }
        if let Some(g) = def.gsi {
            let mut defined: Vec<&str> = vec![def.pk.name];
            defined.extend(def.sk.map(|k| k.name));
            let mut gsi = GlobalSecondaryIndex::builder()
                .index_name(g.name)
                .key_schema(key(g.pk.name, KT::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                );
            if !defined.contains(&g.pk.name) {
                req = req.attribute_definitions(attr(g.pk)?);
                defined.push(g.pk.name);
            }
            if let Some(sk) = g.sk {
                gsi = gsi.key_schema(key(sk.name, KT::Range)?);
                if !defined.contains(&sk.name) {
                    req = req.attribute_definitions(attr(sk)?);
                }
            }
            req = req.global_secondary_indexes(gsi.build().map_err(|e| {
                PortError::new("CreateTable", PortErrorKind::Invalid, e.to_string())
            })?);
        }
        req.send()
            .await
            .map_err(|e| port_err(&format!("CreateTable {name}"), e))?;
        if let Some(ttl) = def.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(ttl)
                        .build()
                        .map_err(|e| {
                            PortError::new(
                                "UpdateTimeToLive",
                                PortErrorKind::Invalid,
                                e.to_string(),
                            )
                        })?,
                )
                .send()
                .await
                .map_err(|e| port_err(&format!("UpdateTimeToLive {name}"), e))?;
        }
    }
    Ok(())
}

/// Table names from the env, as the functions see them.
pub fn table_def_name(def: &TableDef, t: &Tables) -> String {
    match def.logical_id {
        "PropertiesTable" => t.properties.clone(),
        "PropertyDocumentsTable" => t.documents.clone(),
        "SyncLogsTable" => t.sync_logs.clone(),
        _ => t.settings.clone(),
    }
}
