//! Everything that speaks Slack: the Socket Mode transport ([`socket`]), envelopes as typed values
//! ([`inbound`]), the rate-limited Web API transport ([`api`]) and its typed calls ([`web`]),
//! what incd stores in Slack to read back ([`meta`]), every word a person sees ([`ui`]) and the
//! app manifest ([`manifest`]).

pub mod api;
pub mod inbound;
pub mod manifest;
pub mod meta;
pub mod socket;
pub mod ui;
pub mod web;
