//! The arithmetic of a rollout, on plain numbers so that every rule is tested without an
//! apiserver: how far the new ReplicaSet may grow (maxSurge), how far the old ones may shrink
//! (maxUnavailable), Recreate's order, and the proportional scaling of a Deployment resized
//! in the middle of a rollout.
//!
//! Counting is conservative where caches lag: a ReplicaSet counts as many pods as the larger
//! of its spec and its status (pods of a shrunk set may not be gone yet, pods of a grown set
//! may not be seen yet), and as available at most its spec (pods beyond it are about to go).

/// What the rollout needs to know of one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`: pods that exist.
    pub current: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.terminatingReplicas`: pods being deleted, not yet gone.
    pub terminating: i32,
    /// Creation time, seconds (older sets shrink first).
    pub created: i64,
}

impl Set {
    fn pods(&self) -> i32 {
        self.replicas.max(self.current)
    }

    fn counted_available(&self) -> i32 {
        self.available.min(self.replicas).max(0)
    }
}

/// The resolved bounds of a RollingUpdate: maxSurge rounds up, maxUnavailable down, and both
/// zero means one may be unavailable (so the rollout can move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Pods above `replicas` allowed.
    pub surge: i32,
    /// Pods below `replicas` allowed unavailable.
    pub unavailable: i32,
}

impl Bounds {
    /// Resolves surge and unavailability (already scaled against replicas).
    pub fn new(surge: i32, unavailable: i32, replicas: i32) -> Bounds {
        let unavailable = if surge == 0 && unavailable == 0 {
            1
        } else {
            unavailable
        };
        Bounds {
            surge: surge.max(0),
            unavailable: unavailable.clamp(0, replicas.max(0)),
        }
    }
}

/// One change to make: scale the named set to `replicas`.
pub type Scale = (String, i32);

/// The next step of a RollingUpdate: grow the new set if it may; otherwise shrink old ones
/// as far as availability allows.
pub fn rolling(replicas: i32, bounds: Bounds, new: &Set, old: &[Set]) -> Vec<Scale> {
    if new.replicas > replicas {
        return vec![(new.name.clone(), replicas)];
    }
    if new.replicas < replicas {
        let max_total = replicas + bounds.surge;
        let total: i32 = new.pods() + old.iter().map(Set::pods).sum::<i32>();
        if total < max_total {
            let grow = (max_total - total).min(replicas - new.replicas);
            return vec![(new.name.clone(), new.replicas + grow)];
        }
    }
    shrink_old(replicas, bounds, new, old)
}

fn shrink_old(replicas: i32, bounds: Bounds, new: &Set, old: &[Set]) -> Vec<Scale> {
    if old.iter().all(|s| s.replicas == 0) {
        return Vec::new();
    }
    let all: i32 = new.replicas + old.iter().map(|s| s.replicas).sum::<i32>();
    let min_available = replicas - bounds.unavailable;
    let new_unavailable = (new.replicas - new.counted_available()).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }
    let mut order: Vec<&Set> = old.iter().filter(|s| s.replicas > 0).collect();
    order.sort_by_key(|s| (s.created, s.name.clone()));
    let mut target: Vec<(String, i32, i32)> = order
        .iter()
        .map(|s| (s.name.clone(), s.replicas, s.counted_available()))
        .collect();
    // First the pods that are not available anyway.
    for (_, want, available) in target.iter_mut() {
        if budget <= 0 {
            break;
        }
        let unhealthy = (*want - *available).max(0).min(budget);
        *want -= unhealthy;
        budget -= unhealthy;
    }
    // Then available ones, oldest sets first, keeping minAvailable.
    let available_total: i32 =
        new.counted_available() + target.iter().map(|(_, w, a)| (*a).min(*w)).sum::<i32>();
    let mut removable = (available_total - min_available).max(0);
    for (_, want, _) in target.iter_mut() {
        if removable <= 0 {
            break;
        }
        let cut = (*want).min(removable);
        *want -= cut;
        removable -= cut;
    }
    target
        .into_iter()
        .zip(order)
        .filter(|((_, want, _), set)| *want != set.replicas)
        .map(|((name, want, _), _)| (name, want))
        .collect()
}

/// The next step of a Recreate: old sets to zero; once their pods are gone (terminating ones
/// too: old and new never run at once), the new set to `replicas`.
pub fn recreate(replicas: i32, new: &Set, old: &[Set]) -> Vec<Scale> {
    let shrink: Vec<Scale> = old
        .iter()
        .filter(|s| s.replicas > 0)
        .map(|s| (s.name.clone(), 0))
        .collect();
    if !shrink.is_empty() || old.iter().any(|s| s.current > 0 || s.terminating > 0) {
        return shrink;
    }
    if new.replicas != replicas {
        return vec![(new.name.clone(), replicas)];
    }
    Vec::new()
}

/// Resizes the active sets when the Deployment's replicas changed: with one active set, that
/// set takes the new size; with several (mid-rollout), the difference to `replicas + surge`
/// is spread in proportion to their sizes, the remainder to the largest (newest on a tie).
pub fn proportional(replicas: i32, surge: i32, new: Option<&Set>, old: &[Set]) -> Vec<Scale> {
    let mut active: Vec<&Set> = new
        .into_iter()
        .chain(old)
        .filter(|s| s.replicas > 0)
        .collect();
    match active.len() {
        0 => {
            // Nothing runs: the newest set (or the new one) takes it all.
            let latest = new.or_else(|| old.iter().max_by_key(|s| s.created));
            return latest
                .filter(|s| s.replicas != replicas)
                .map(|s| vec![(s.name.clone(), replicas)])
                .unwrap_or_default();
        }
        1 => {
            let s = active[0];
            return if s.replicas == replicas {
                Vec::new()
            } else {
                vec![(s.name.clone(), replicas)]
            };
        }
        _ => {}
    }
    let total: i32 = active.iter().map(|s| s.replicas).sum();
    let allowed = replicas + surge;
    let delta = allowed - total;
    if delta == 0 {
        return Vec::new();
    }
    active.sort_by_key(|s| (std::cmp::Reverse(s.replicas), std::cmp::Reverse(s.created)));
    let mut changes: Vec<(String, i32, i32)> = active
        .iter()
        .map(|s| {
            let share = (i64::from(s.replicas) * i64::from(delta) / i64::from(total)) as i32;
            (s.name.clone(), s.replicas, share)
        })
        .collect();
    let given: i32 = changes.iter().map(|c| c.2).sum();
    if let Some(first) = changes.first_mut() {
        first.2 += delta - given;
    }
    changes
        .into_iter()
        .filter(|c| c.2 != 0)
        .map(|(name, now, share)| (name, (now + share).max(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, replicas: i32, current: i32, available: i32, created: i64) -> Set {
        Set {
            name: name.into(),
            replicas,
            current,
            available,
            terminating: 0,
            created,
        }
    }

    /// Drives a rolling update to its end on an ideal cluster (a set's pods exist and are
    /// available as soon as it is scaled), checking the bounds at every step.
    #[test]
    fn a_rolling_update_keeps_its_bounds_to_the_end() {
        let replicas = 10;
        let bounds = Bounds::new(2, 1, replicas);
        let mut new = set("new", 0, 0, 0, 2);
        let mut old = vec![set("old", 10, 10, 10, 1)];
        for _ in 0..50 {
            let steps = rolling(replicas, bounds, &new, &old);
            if steps.is_empty() {
                break;
            }
            for (name, to) in steps {
                let s = if name == "new" { &mut new } else { &mut old[0] };
                // Growth shows up first as pods not yet available; shrinking removes pods.
                s.replicas = to;
                s.current = to;
                s.available = s.available.min(to);
            }
            let pods = new.current + old[0].current;
            let available = new.available + old[0].available;
            assert!(pods <= 12, "{pods} pods");
            assert!(available >= 9, "{available} available");
            // The new pods become available.
            new.available = new.current;
        }
        assert_eq!((new.replicas, old[0].replicas), (10, 0));
    }

    #[test]
    fn surge_is_limited_by_pods_not_yet_gone() {
        let bounds = Bounds::new(2, 1, 10);
        // Old set shrunk to 8 but its 10 pods still exist: the new set may not grow.
        let new = set("new", 2, 2, 0, 2);
        let old = [set("old", 8, 10, 10, 1)];
        assert_eq!(rolling(10, bounds, &new, &old), vec![]);
    }

    #[test]
    fn unavailable_old_pods_go_first() {
        let bounds = Bounds::new(0, 1, 4);
        let new = set("new", 0, 0, 0, 3);
        let old = [set("a", 2, 2, 0, 1), set("b", 2, 2, 2, 2)];
        // Budget 4 - 3 - 0 = 1: one of a's unavailable pods.
        assert_eq!(rolling(4, bounds, &new, &old), vec![("a".to_owned(), 1)]);
    }

    #[test]
    fn zero_zero_means_one_unavailable() {
        assert_eq!(
            Bounds::new(0, 0, 3),
            Bounds {
                surge: 0,
                unavailable: 1
            }
        );
        assert_eq!(Bounds::new(3, 5, 3).unavailable, 3);
    }

    #[test]
    fn recreate_waits_for_old_pods_to_go() {
        let new = set("new", 0, 0, 0, 2);
        assert_eq!(
            recreate(3, &new, &[set("old", 3, 3, 3, 1)]),
            vec![("old".to_owned(), 0)]
        );
        assert_eq!(recreate(3, &new, &[set("old", 0, 2, 0, 1)]), vec![]);
        assert_eq!(
            recreate(3, &new, &[set("old", 0, 0, 0, 1)]),
            vec![("new".to_owned(), 3)]
        );
    }

    #[test]
    fn resizing_mid_rollout_is_proportional() {
        let new = set("new", 4, 4, 4, 2);
        let old = [set("old", 8, 8, 8, 1)];
        // 12 pods; resized to 20 with a surge of 3: 11 more, 8/12 and 4/12 of them rounded
        // down (7 and 3), the remainder to the largest set.
        let mut changes = proportional(20, 3, Some(&new), &old);
        changes.sort();
        assert_eq!(changes, vec![("new".to_owned(), 7), ("old".to_owned(), 16)]);
        let total: i32 = changes.iter().map(|c| c.1).sum();
        assert_eq!(total, 23);
        // One active set takes the new size.
        assert_eq!(
            proportional(
                5,
                1,
                Some(&set("new", 3, 3, 3, 2)),
                &[set("old", 0, 0, 0, 1)]
            ),
            vec![("new".to_owned(), 5)]
        );
    }
}
