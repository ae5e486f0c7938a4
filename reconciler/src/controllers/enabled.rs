//! Which control loops run, chosen as kube-controller-manager's `--controllers` flag does:
//! `*` for every loop, `name` to add one, `-name` to leave one out (`*,-garbagecollector`).

/// Every loop, by name.
pub const LOOPS: &[&str] = &[
    "scheduler",
    "nodelifecycle",
    "replicaset",
    "replicationcontroller",
    "deployment",
    "daemonset",
    "statefulset",
    "job",
    "cronjob",
    "endpoints",
    "disruption",
    "resourcequota",
    "serviceaccount",
    "garbagecollector",
];

/// A name in `--controllers` that names no loop.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown controller {0:?}; known: *, {known}", known = LOOPS.join(", "))]
pub struct UnknownLoop(pub String);

/// The loops chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled(Vec<&'static str>);

impl Enabled {
    /// Every loop.
    pub fn all() -> Enabled {
        Enabled(LOOPS.to_vec())
    }

    /// Reads the flag's items, in order.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Enabled, UnknownLoop> {
        let mut on: Vec<&'static str> = Vec::new();
        for item in items {
            let item = item.as_ref().trim();
            if item.is_empty() {
                continue;
            }
            if item == "*" {
                on = LOOPS.to_vec();
                continue;
            }
            let (remove, name) = match item.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, item),
            };
            let known = LOOPS
                .iter()
                .find(|l| **l == name)
                .ok_or_else(|| UnknownLoop(item.to_owned()))?;
            if remove {
                on.retain(|l| l != known);
            } else if !on.contains(known) {
                on.push(known);
            }
        }
        Ok(Enabled(on))
    }

    /// Whether `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.0.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_flag_as_kube_controller_manager() {
        let e = Enabled::parse(&["*", "-garbagecollector"]).expect("parses");
        assert!(e.runs("deployment") && !e.runs("garbagecollector"));
        let e = Enabled::parse(&["scheduler", "nodelifecycle"]).expect("parses");
        assert!(e.runs("scheduler") && !e.runs("replicaset"));
        assert_eq!(Enabled::parse(&["*"]).expect("parses"), Enabled::all());
        assert!(Enabled::parse(&["replicasets"]).is_err());
    }
}
