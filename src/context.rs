//! The shared context handed to handlers and workflows: plain data, it spawns nothing.
//!
//! Settings, the store, the typed clients, metrics and the clock, plus two pieces of in-process
//! state that only coordinate work inside this process (the pinned-summary refresh state and the
//! "a channel was created" wake-up). Built by the composition root (`app.rs`) from real clients,
//! or by tests from fakes and a [`TestClock`](crate::clock::TestClock).

use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::Settings;
use crate::incident::UserId;
use crate::integrations::notion::Notion;
use crate::integrations::pagerduty::Pager;
use crate::metrics::Metrics;
use crate::slack::api::SlackApi;
use crate::store::Store;

/// What handlers and workflows work with.
pub struct Ctx {
    pub settings: Settings,
    pub store: Store,
    pub slack: SlackApi,
    pub pager: Option<Pager>,
    pub notion: Option<Notion>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    bot_user: OnceLock<UserId>,
    /// Pinned-summary refresh state per incident.
    pub(crate) summaries: crate::workflow::summary::Summaries,
    /// Woken whenever an incident channel is created, or declaring fails for good (integration
    /// steps wait for the channel).
    pub(crate) channel_created: Notify,
}

/// The parts of a [`Ctx`].
pub struct Parts {
    pub settings: Settings,
    pub store: Store,
    pub slack: SlackApi,
    pub pager: Option<Pager>,
    pub notion: Option<Notion>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl Ctx {
    pub fn new(p: Parts) -> Ctx {
        Ctx {
            settings: p.settings,
            store: p.store,
            slack: p.slack,
            pager: p.pager,
            notion: p.notion,
            metrics: p.metrics,
            clock: p.clock,
            bot_user: OnceLock::new(),
            summaries: Default::default(),
            channel_created: Notify::new(),
        }
    }

    /// The bot's own user id, once `auth.test` told us.
    pub fn bot_user_id(&self) -> Option<&UserId> {
        self.bot_user.get()
    }

    /// Remember the bot's user id (the first answer wins; it never changes while running).
    pub fn set_bot_user_id(&self, id: UserId) {
        if self.bot_user.set(id).is_err() {
            tracing::debug!("bot user id already known");
        }
    }
}
