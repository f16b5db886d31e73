//! A seeded random fault schedule shared by the fakes (chaos testing).
//!
//! One [`Chaos`] is handed to every fake with `set_chaos(Some(chaos.clone()))`
//! ([`FakeSlack::set_chaos`](crate::slack::FakeSlack::set_chaos),
//! [`FakePagerDuty::set_chaos`](crate::pagerduty::FakePagerDuty::set_chaos),
//! [`FakeNotion::set_chaos`](crate::notion::FakeNotion::set_chaos)). While it is enabled, each
//! request that no scripted fault answers is faulted with probability [`ChaosConfig::rate`]; the
//! fault's class is drawn uniformly from [`ChaosConfig::classes`] and shaped the way the service
//! fails:
//!
//! | class | Slack Web API | PagerDuty (Events v2, REST) | Notion |
//! | --- | --- | --- | --- |
//! | [`FaultClass::ServerError`] | HTTP 500/502/503, no effect | 500/502/503 | 500 `internal_server_error`, 502, 503 `service_unavailable` |
//! | [`FaultClass::Reset`] | connection dropped, no effect | same | same |
//! | [`FaultClass::ShortHang`] | acts, answers after 50..=`max_hang` | waits, then serves | waits, then serves |
//! | [`FaultClass::RateLimited`] | 429 + `Retry-After` | 429 + `Retry-After` | 429 `rate_limited` + `Retry-After` |
//! | [`FaultClass::TransientCode`] | 200 `ok:false` `internal_error` / `fatal_error` / `service_unavailable` / `request_timeout`, no effect | 502 | 409 `conflict_error`, 503 `service_unavailable` |
//! | [`FaultClass::LostResponse`] | acts, then the connection drops or HTTP 500 | same | same |
//!
//! Every 429 it draws is remembered by the fake like any other: a request arriving before the
//! `Retry-After` elapsed is recorded as an early retry. Draws come from one `StdRng` seeded with
//! [`ChaosConfig::seed`], in request arrival order: the same seed gives the same sequence of
//! faults, though which request meets which fault also depends on timing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which fake is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Slack,
    PagerDuty,
    Notion,
}

/// A kind of failure, shaped per service (table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultClass {
    /// HTTP 5xx; nothing happened.
    ServerError,
    /// The connection drops before any answer; nothing happened.
    Reset,
    /// A few hundred milliseconds of silence, then a normal answer.
    ShortHang,
    /// 429 with `Retry-After`.
    RateLimited,
    /// The service's documented transient error codes.
    TransientCode,
    /// The call is performed, then its answer is lost (dropped connection or a 500).
    LostResponse,
}

impl FaultClass {
    /// Every class.
    pub const ALL: [FaultClass; 6] = [
        FaultClass::ServerError,
        FaultClass::Reset,
        FaultClass::ShortHang,
        FaultClass::RateLimited,
        FaultClass::TransientCode,
        FaultClass::LostResponse,
    ];
}

/// Slack's transient `ok:false` codes (platform-contracts §8).
pub const SLACK_TRANSIENT_CODES: [&str; 4] = [
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// How the schedule draws.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seed: u64,
    /// Probability that one request is faulted, 0..=1.
    pub rate: f64,
    /// Classes drawn from, uniformly. Empty: nothing is faulted.
    pub classes: Vec<FaultClass>,
    /// `Retry-After` of injected 429s, in seconds.
    pub retry_after_secs: u64,
    /// Longest [`FaultClass::ShortHang`].
    pub max_hang: Duration,
}

impl ChaosConfig {
    /// Every class at `rate`, 1 s Retry-After, hangs up to 400 ms.
    pub fn all(seed: u64, rate: f64) -> ChaosConfig {
        ChaosConfig {
            seed,
            rate,
            classes: FaultClass::ALL.to_vec(),
            retry_after_secs: 1,
            max_hang: Duration::from_millis(400),
        }
    }
}

/// One fault the schedule handed out.
#[derive(Debug, Clone)]
pub struct Injected {
    pub at: Instant,
    pub service: Service,
    /// Slack method, or `VERB /path` for PagerDuty and Notion.
    pub call: String,
    pub class: FaultClass,
    /// The concrete fault, e.g. `Error("fatal_error")`.
    pub detail: String,
}

struct ChaosState {
    rng: StdRng,
    enabled: bool,
    injected: Vec<Injected>,
}

/// The schedule. Share it with `Arc`.
pub struct Chaos {
    cfg: ChaosConfig,
    state: Mutex<ChaosState>,
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaos").field("cfg", &self.cfg).finish()
    }
}

impl Chaos {
    /// A schedule, enabled.
    pub fn new(cfg: ChaosConfig) -> Arc<Chaos> {
        Arc::new(Chaos {
            state: Mutex::new(ChaosState {
                rng: StdRng::seed_from_u64(cfg.seed),
                enabled: true,
                injected: Vec::new(),
            }),
            cfg,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ChaosState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &ChaosConfig {
        &self.cfg
    }

    /// Start or stop faulting (stopped: every request is served normally).
    pub fn set_enabled(&self, on: bool) {
        self.lock().enabled = on;
    }

    /// Every fault handed out so far.
    pub fn injected(&self) -> Vec<Injected> {
        self.lock().injected.clone()
    }

    /// Draw the class for one request, or `None` when it goes through.
    fn class(&self, st: &mut ChaosState) -> Option<FaultClass> {
        if !st.enabled || self.cfg.classes.is_empty() || !st.rng.random_bool(self.cfg.rate) {
            return None;
        }
        let i = st.rng.random_range(0..self.cfg.classes.len());
        Some(self.cfg.classes[i])
    }

    fn hang(&self, st: &mut ChaosState) -> Duration {
        let max = self.cfg.max_hang.as_millis().max(50) as u64;
        Duration::from_millis(st.rng.random_range(50..=max))
    }

    fn note(st: &mut ChaosState, service: Service, call: &str, class: FaultClass, detail: String) {
        st.injected.push(Injected {
            at: Instant::now(),
            service,
            call: call.to_string(),
            class,
            detail,
        });
    }

    /// The fault for one Slack Web API call.
    pub(crate) fn draw_slack(&self, method: &str) -> Option<crate::slack::Fault> {
        use crate::slack::Fault;
        let mut st = self.lock();
        let class = self.class(&mut st)?;
        let fault = match class {
            FaultClass::ServerError => Fault::Status([500, 502, 503][st.rng.random_range(0..3)]),
            FaultClass::Reset => Fault::Reset,
            FaultClass::ShortHang => Fault::Delay(self.hang(&mut st)),
            FaultClass::RateLimited => Fault::RateLimited {
                retry_after_secs: self.cfg.retry_after_secs,
            },
            FaultClass::TransientCode => {
                let code = SLACK_TRANSIENT_CODES[st.rng.random_range(0..4)];
                Fault::Error(code.to_string())
            }
            FaultClass::LostResponse => {
                if st.rng.random_bool(0.5) {
                    Fault::ApplyThenReset
                } else {
                    Fault::ApplyThenStatus(500)
                }
            }
        };
        Self::note(&mut st, Service::Slack, method, class, format!("{fault:?}"));
        Some(fault)
    }

    /// The fault for one PagerDuty or Notion request.
    pub(crate) fn draw_http(
        &self,
        service: Service,
        verb: &str,
        path: &str,
    ) -> Option<crate::pagerduty::Fault> {
        use crate::pagerduty::Fault;
        let mut st = self.lock();
        let class = self.class(&mut st)?;
        let fault = match class {
            FaultClass::ServerError => Fault::Status([500, 502, 503][st.rng.random_range(0..3)]),
            FaultClass::Reset => Fault::Reset,
            FaultClass::ShortHang => Fault::Delay(self.hang(&mut st)),
            FaultClass::RateLimited => Fault::RateLimited {
                retry_after_secs: self.cfg.retry_after_secs,
            },
            FaultClass::TransientCode => match service {
                Service::Notion => Fault::Status([409, 503][st.rng.random_range(0..2)]),
                _ => Fault::Status(502),
            },
            FaultClass::LostResponse => {
                if st.rng.random_bool(0.5) {
                    Fault::ApplyThenReset
                } else {
                    Fault::ApplyThenStatus(500)
                }
            }
        };
        let call = format!("{verb} {path}");
        Self::note(&mut st, service, &call, class, format!("{fault:?}"));
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_faults_and_rate_zero_draws_none() {
        let draws = |seed| {
            let c = Chaos::new(ChaosConfig::all(seed, 0.5));
            (0..200)
                .map(|i| format!("{:?}", c.draw_slack(&format!("m{i}"))))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        let none = Chaos::new(ChaosConfig::all(1, 0.0));
        assert!((0..100).all(|_| none.draw_slack("chat.postMessage").is_none()));
    }

    #[test]
    fn every_class_is_drawn_and_a_disabled_schedule_faults_nothing() {
        let c = Chaos::new(ChaosConfig::all(3, 1.0));
        for _ in 0..300 {
            c.draw_slack("chat.postMessage");
            c.draw_http(Service::Notion, "POST", "/v1/pages");
        }
        let seen: std::collections::BTreeSet<_> = c.injected().iter().map(|i| i.class).collect();
        assert_eq!(seen.len(), FaultClass::ALL.len(), "{seen:?}");
        c.set_enabled(false);
        assert!(c.draw_slack("chat.postMessage").is_none());
        assert!(c
            .draw_http(Service::PagerDuty, "POST", "/v2/enqueue")
            .is_none());
    }
}
