//! Rules on PodDisruptionBudgets (one of minAvailable and maxUnavailable) and
//! HorizontalPodAutoscalers (replica bounds).

use serde_json::Value;

use super::{Findings, at_least, selector};
use crate::pointer::JsonPointer;

/// Checks a PodDisruptionBudget's spec.
pub fn check_pdb(spec: &Value, path: &JsonPointer, out: &mut Findings) {
    if spec.get("minAvailable").is_some() && spec.get("maxUnavailable").is_some() {
        out.add(
            path.join("maxUnavailable"),
            "minAvailable and maxUnavailable cannot both be set",
        );
    }
    for field in ["minAvailable", "maxUnavailable"] {
        if let Some(n) = spec[field].as_i64()
            && n < 0
        {
            out.add(path.join(field), "must be greater than or equal to 0");
        }
    }
    selector::check(&spec["selector"], &path.join("selector"), out);
}

/// Checks a HorizontalPodAutoscaler's spec.
pub fn check_hpa(spec: &Value, path: &JsonPointer, out: &mut Findings) {
    at_least(&spec["minReplicas"], 1, path.join("minReplicas"), out);
    at_least(&spec["maxReplicas"], 1, path.join("maxReplicas"), out);
    if let (Some(min), Some(max)) = (spec["minReplicas"].as_i64(), spec["maxReplicas"].as_i64())
        && max < min
    {
        out.add(
            path.join("maxReplicas"),
            format!("must be greater than or equal to minReplicas ({min})"),
        );
    }
}
