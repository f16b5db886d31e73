//! Everything that speaks Slack: the Socket Mode transport ([`socket`]), the Web API client
//! ([`api`]), every message and modal ([`messages`]) and the app manifest ([`manifest`]).

pub mod api;
pub mod manifest;
pub mod messages;
pub mod socket;
