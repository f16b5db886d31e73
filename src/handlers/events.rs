//! Events API deliveries: acked at once; a redelivery (same `event_id`) is dropped. A 📌
//! reaction (the configured emoji) or a pin in an incident channel puts that message on the
//! timeline, and removing the last of them takes it off (see `workflow::capture`); the work
//! starts after the ack.

use std::sync::Arc;

use super::Outcome;
use crate::slack::inbound::{Event, EventCallback};
use crate::slack::socket::Handled;
use crate::workflow::capture::{self, Mark};
use crate::workflow::runner::Runner;

/// One event; `first_time` is false for a redelivery of an event already seen.
pub fn on_event(app: &Arc<Runner>, e: EventCallback, first_time: bool) -> Outcome {
    if !first_time {
        tracing::info!(event_id = %e.event_id, event = e.event.kind(), "redelivered event dropped");
        return Ok(Handled::default());
    }
    let emoji = &app.ctx().settings.timeline_emoji;
    let mark = match e.event {
        Event::ReactionAdded(r) if r.reaction == *emoji => Mark::added(
            r.item.channel,
            r.item.ts,
            format!("reaction:{}", r.user),
            r.user,
            None,
        ),
        Event::ReactionRemoved(r) if r.reaction == *emoji => Mark::removed(
            r.item.channel,
            r.item.ts,
            format!("reaction:{}", r.user),
            r.user,
        ),
        Event::PinAdded(p) => match p.item.message {
            Some(m) => Mark::added(
                p.channel_id,
                m.ts.clone(),
                "pin".into(),
                p.user,
                Some(capture::Inline {
                    text: m.text,
                    author: m.user,
                    permalink: m.permalink,
                }),
            ),
            None => return Ok(Handled::default()),
        },
        Event::PinRemoved(p) => match p.item.message {
            Some(m) => Mark::removed(p.channel_id, m.ts, "pin".into(), p.user),
            None => return Ok(Handled::default()),
        },
        Event::AppHomeOpened(h) if h.tab == "home" => {
            let app = app.clone();
            return Ok(Handled::default().then(move || {
                let r = app.clone();
                app.spawn_tracked(async move {
                    if let Err(e) = crate::workflow::home::publish(&r, &h.user).await {
                        tracing::warn!(error = format!("{e:#}"), "could not publish the Home tab");
                    }
                });
            }));
        }
        other => {
            tracing::debug!(event_id = %e.event_id, event = other.kind(), "event ignored");
            return Ok(Handled::default());
        }
    };
    let app = app.clone();
    Ok(Handled::default().then(move || {
        let r = app.clone();
        app.spawn_tracked(async move {
            if let Err(e) = capture::apply(&r, mark).await {
                tracing::error!(error = format!("{e:#}"), "could not update the timeline");
            }
        });
    }))
}
