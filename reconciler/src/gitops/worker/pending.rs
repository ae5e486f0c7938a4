//! The worker's queue of triggers, coalesced.

use super::Trigger;

/// Triggers waiting to be handled, coalesced: requests (`ferry sync`, rollbacks) in order and
/// first, then one look at the head (a webhook's if any), then one drift check.
#[derive(Debug, Default)]
pub(super) struct Pending {
    requests: std::collections::VecDeque<Trigger>,
    pub(super) look: Option<Trigger>,
    drift: bool,
}

impl Pending {
    pub(super) fn add(&mut self, trigger: Trigger) {
        match trigger {
            Trigger::DriftCheck => self.drift = true,
            Trigger::Poll { webhook: true } => self.look = Some(trigger),
            Trigger::Watch | Trigger::Poll { .. } => {
                if self.look.is_none() {
                    self.look = Some(trigger);
                }
            }
            request => self.requests.push_back(request),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.look.is_none() && !self.drift
    }

    pub(super) fn next(&mut self) -> Option<Trigger> {
        if let Some(r) = self.requests.pop_front() {
            return Some(r);
        }
        if let Some(look) = self.look.take() {
            return Some(look);
        }
        std::mem::take(&mut self.drift).then_some(Trigger::DriftCheck)
    }
}
