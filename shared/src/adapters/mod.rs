//! Implementations of the ports: DynamoDB, EventBridge Scheduler, Lambda, EventBridge, Cupid HTTP.
pub mod aws;
pub mod cupid;
pub mod dynamo;
pub mod tables;
