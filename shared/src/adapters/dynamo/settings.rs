//! The settings table: one item per key, written all or nothing.

use super::{get_s, s};
use crate::adapters::port_err;
use crate::config::Tables;
use crate::domain::settings::{SettingKey, SettingValue};
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue as AV, Put, TransactWriteItem};
use std::collections::{BTreeMap, HashMap};

#[derive(Clone)]
pub struct DynamoSettings {
    client: Client,
    table: String,
}

impl DynamoSettings {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoSettings {
            client,
            table: tables.settings.clone(),
        }
    }
}

#[async_trait]
impl SettingsStore for DynamoSettings {
    async fn load(&self) -> PortResult<BTreeMap<String, StoredSetting>> {
        let mut out = BTreeMap::new();
        let mut start: Option<HashMap<String, AV>> = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&format!("Scan {}", self.table), e))?;
            for item in resp.items() {
                if let (Some(k), Some(v)) =
                    (get_s(item, "setting_key"), get_s(item, "setting_value"))
                {
                    let at = get_s(item, "updated_at")
                        .and_then(|t| Timestamp::parse_rfc3339(&t))
                        .unwrap_or(Timestamp(0));
                    out.insert(
                        k,
                        StoredSetting {
                            value: v,
                            updated_at: at,
                        },
                    );
                }
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn put_all(
        &self,
        values: &[(SettingKey, SettingValue)],
        now: Timestamp,
    ) -> PortResult<()> {
        if values.is_empty() {
            return Ok(());
        }
        let mut req = self.client.transact_write_items();
        for (k, v) in values {
            let put = Put::builder()
                .table_name(&self.table)
                .item("setting_key", s(k.as_str()))
                .item("setting_value", s(v.render()))
                .item("description", s(k.description()))
                .item("updated_at", s(now.rfc3339()))
                .build()
                .map_err(|e| {
                    PortError::new(
                        format!("PutItem setting {k}"),
                        PortErrorKind::Invalid,
                        e.to_string(),
                    )
                })?;
            req = req.transact_items(TransactWriteItem::builder().put(put).build());
        }
        req.send()
            .await
            .map_err(|e| port_err("TransactWriteItems settings", e))?;
        Ok(())
    }
}
