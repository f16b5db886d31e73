//! Fencing: a workflow's step records are written only while its process holds the workflow's
//! lease. The runner runs each leased workflow inside [`fenced`]; every step record made in that
//! task checks, in the same transaction, that the lease row still names this owner. A process
//! that lost its lease (it stalled past the expiry and another replica took the work over) gets
//! [`LeaseLost`] instead of recording a step done that the new holder is redoing.
//!
//! The check is on the owner, not the expiry: an expired lease nobody took over is still this
//! process's work, and a write then is harmless. In PostgreSQL the lease row is read `FOR SHARE`,
//! so a replica claiming it waits until the step record is committed.

/// The lease a task's step records are fenced by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub owner: String,
}

tokio::task_local! {
    static FENCE: Fence;
}

/// Run `work` with its step records fenced by `fence`.
pub async fn fenced<F: std::future::Future>(fence: Fence, work: F) -> F::Output {
    FENCE.scope(fence, work).await
}

/// The fence of the current task, if any.
pub(crate) fn current() -> Option<Fence> {
    FENCE.try_with(Fence::clone).ok()
}

/// A step record refused because another process holds the workflow's lease now.
#[derive(Debug, thiserror::Error)]
#[error("this process no longer holds the lease {key}: another took the work over")]
pub struct LeaseLost {
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{declared, each_backend, t};
    use crate::store::StepState;

    #[tokio::test]
    async fn a_process_that_lost_its_lease_cannot_record_a_step_done() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            let a = Fence {
                key: "declare:1".into(),
                owner: "a".into(),
            };
            assert!(s.claim_lease(&a.key, "a", t(0), t(30)).await.unwrap());
            fenced(
                a.clone(),
                s.set_step(id, "page", StepState::Started, None, t(1)),
            )
            .await
            .unwrap();
            // a stalls past its lease; b takes the work over.
            assert!(s.claim_lease(&a.key, "b", t(31), t(61)).await.unwrap());
            let e = fenced(
                a.clone(),
                s.set_step(id, "page", StepState::Done, None, t(32)),
            )
            .await
            .unwrap_err();
            assert!(e.downcast_ref::<LeaseLost>().is_some(), "{e:#}");
            let step = s.step(id, "page").await.unwrap().unwrap();
            assert_eq!(step.state, StepState::Started);
            // b, fenced by its own lease, records it.
            let b = Fence {
                owner: "b".into(),
                ..a
            };
            fenced(b, s.set_step(id, "page", StepState::Done, None, t(33)))
                .await
                .unwrap();
            assert_eq!(
                s.step(id, "page").await.unwrap().unwrap().state,
                StepState::Done
            );
        })
        .await;
    }
}
