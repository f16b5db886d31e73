//! Events API deliveries: acked at once; a redelivery (same `event_id`) is dropped. No event
//! changes anything yet; each is logged.

use super::Outcome;
use crate::slack::inbound::EventCallback;
use crate::slack::socket::Handled;

/// One event; `first_time` is false for a redelivery of an event already seen.
pub fn on_event(e: EventCallback, first_time: bool) -> Outcome {
    if !first_time {
        tracing::info!(event_id = %e.event_id, event = e.event.kind(), "redelivered event dropped");
        return Ok(Handled::default());
    }
    tracing::debug!(event_id = %e.event_id, event = e.event.kind(), "event ignored");
    Ok(Handled::default())
}
