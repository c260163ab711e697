//! The schema baseline (`domain::shape`): one item (`sync_id = "schema#baseline"`) in the run
//! log table, its shapes as compressed JSON; replaced only by a write with a fencing token at
//! least the stored one (a run never replaces a later run's baseline).

use super::{n, pack, s, units, unpack};
use crate::adapters::port_err;
use crate::adapters::tables;
use crate::config::Tables;
use crate::domain::drift::Baseline;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

const BODY: &str = "baseline";

#[derive(Clone)]
pub struct DynamoSchema {
    client: Client,
    table: String,
}

impl DynamoSchema {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoSchema {
            client,
            table: tables.sync_logs.clone(),
        }
    }
}

#[async_trait]
impl SchemaStore for DynamoSchema {
    async fn baseline(&self) -> PortResult<Option<Baseline>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::SCHEMA_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err("GetItem the schema baseline", e))?;
        match out.item.as_ref().and_then(|i| i.get(BODY)) {
            None => Ok(None),
            Some(av) => unpack("the schema baseline", av).map(Some),
        }
    }

    async fn save_baseline(&self, b: &Baseline) -> PortResult<Usage> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("sync_id", s(tables::SCHEMA_KEY))
            .item("fence", n(b.fence))
            .item("updated_by", s(&b.updated_by))
            .item("updated_at", n(b.updated_at))
            .item(BODY, pack("the schema baseline", b)?)
            .condition_expression("attribute_not_exists(fence) OR fence <= :f")
            .expression_attribute_values(":f", n(b.fence))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match r {
            Ok(out) => Ok(Usage {
                wcu: units(out.consumed_capacity()),
                ..Usage::default()
            }),
            Err(e) => {
                let err = port_err("PutItem the schema baseline", e);
                if err.kind == PortErrorKind::Conflict {
                    return Err(PortError::new(
                        "PutItem the schema baseline",
                        PortErrorKind::Fenced,
                        format!("a later run (fencing token above {}) stored it", b.fence),
                    ));
                }
                Err(err)
            }
        }
    }
}
