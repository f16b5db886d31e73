pub mod notion;
pub mod pagerduty;
pub mod slack;
