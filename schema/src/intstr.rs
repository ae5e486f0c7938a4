//! IntOrString values that scale (`maxSurge: 25%`, `maxUnavailable: 1`), resolved against a
//! total as Kubernetes' `GetScaledValueFromIntOrPercent` does: a percentage rounds up or
//! down as the caller asks.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A value that is neither an integer nor a percentage.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value {0:?}: must be an integer or a percentage")]
pub struct IntOrPercentError(pub String);

/// `value` scaled against `total`: an integer as it is, `N%` as `total * N / 100` rounded
/// up when `round_up`, else down.
pub fn scaled(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, IntOrPercentError> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| IntOrPercentError(s.clone()))?;
            let product = percent * i64::from(total);
            let value = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).map_err(|_| IntOrPercentError(s.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_asked() {
        let p = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled(&p("25%"), 10, true), Ok(3));
        assert_eq!(scaled(&p("25%"), 10, false), Ok(2));
        assert_eq!(scaled(&p("0%"), 10, true), Ok(0));
        assert_eq!(scaled(&p("100%"), 7, false), Ok(7));
        assert_eq!(scaled(&IntOrString::Int(2), 10, true), Ok(2));
        assert!(scaled(&p("lots"), 10, true).is_err());
        assert!(scaled(&p("%"), 10, true).is_err());
    }
}
