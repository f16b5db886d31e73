//! `/incident`: the grammar decides ([`IncidentCommand::parse`]). No words or free text opens
//! the declare form; a subcommand runs here, one arm each, calling the function of its feature
//! file. Only `help`, `list` and declaring work outside an incident channel (known from the
//! store, never from the channel's name); bad arguments get an ephemeral answer naming the valid
//! values and change nothing.

use std::sync::Arc;

use tokio::time::Instant;

use super::{declare, lifecycle, Failure, Outcome};
use crate::incident::command::IncidentCommand;
use crate::slack::inbound::SlashCommand;
use crate::slack::socket::Handled;
use crate::slack::ui;
use crate::workflow::runner::Runner;

/// `/incident [words]`.
pub async fn on_command(app: &Arc<Runner>, c: SlashCommand, received: Instant) -> Outcome {
    let levels: Vec<&str> = app
        .ctx()
        .settings
        .incidents
        .severities
        .iter()
        .map(|l| l.id.as_str())
        .collect();
    let cmd = match IncidentCommand::parse(&c.text, &levels) {
        Ok(cmd) => cmd,
        Err(e) => return Ok(Handled::reply(Some(ui::lifecycle::command_refused(&e)))),
    };
    if let IncidentCommand::Declare { .. } = cmd {
        return declare::on_command(app, c, received);
    }
    let incident = app
        .ctx()
        .store
        .incident_by_channel(&c.channel_id)
        .await
        .map_err(|e| Failure::new(e.context("store unavailable"), Some(ui::internal_error())))?;
    let inc = match (incident, cmd.allowed_outside_incident_channel()) {
        (Some(inc), _) => Some(inc),
        (None, true) => None,
        (None, false) => {
            return Ok(Handled::reply(Some(ui::lifecycle::outside_incident(
                cmd.name(),
            ))))
        }
    };
    let name = cmd.name();
    match (cmd, inc) {
        (IncidentCommand::Declare { .. }, _) => declare::on_command(app, c, received),
        (IncidentCommand::Help, inc) => lifecycle::help(app, inc.as_ref()),
        (IncidentCommand::List, _) => lifecycle::list(app).await,
        (IncidentCommand::Update { status, message }, Some(inc)) => {
            lifecycle::update(app, &c, inc, status, message).await
        }
        (IncidentCommand::UpdateForm, Some(inc)) => lifecycle::update_form(app, &c, inc, received),
        (IncidentCommand::Severity(level), Some(inc)) => {
            lifecycle::severity(app, &c, inc, level).await
        }
        (IncidentCommand::Role { role, target }, Some(inc)) => {
            lifecycle::role(app, &c, inc, role, target).await
        }
        (IncidentCommand::RolesForm, Some(inc)) => lifecycle::roles_form(app, &c, inc, received),
        (IncidentCommand::Note(text), Some(inc)) => lifecycle::note(app, &c, inc, text).await,
        (IncidentCommand::Timeline, Some(inc)) => lifecycle::timeline(app, inc).await,
        (
            cmd @ (IncidentCommand::FollowUp { .. }
            | IncidentCommand::FollowUps
            | IncidentCommand::Done(_)
            | IncidentCommand::WontDo(_)
            | IncidentCommand::Close
            | IncidentCommand::Reopen),
            Some(_),
        ) => super::after_incident(app, c, Ok(cmd), received).await,
        (_, None) => Ok(Handled::reply(Some(ui::lifecycle::outside_incident(name)))),
    }
}
