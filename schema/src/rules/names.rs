//! Name syntax: DNS-1123 labels and subdomains, DNS-1035 labels, qualified names (label and
//! annotation keys), label values and IANA service names, as the apiserver enforces them.
//!
//! Each check returns `None` when the value is valid, or a message saying what is wrong.

/// The rule a kind's `metadata.name` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Up to 253 characters: lowercase alphanumerics, `-` and `.`, alphanumeric at both ends.
    Dns1123Subdomain,
    /// A subdomain with a lower length limit (Job: 63, CronJob: 52).
    SubdomainMax(usize),
    /// Up to 63 characters: lowercase alphanumerics and `-`, alphanumeric at both ends.
    Dns1123Label,
    /// A DNS-1123 label that starts with a letter (Service names).
    Dns1035Label,
    /// Any name that can be one segment of a URL path (RBAC roles and bindings:
    /// `system:controller:foo`): not `.` or `..`, no `/` or `%`.
    PathSegment,
}

impl NameRule {
    /// Checks a name against the rule.
    pub fn check(self, name: &str) -> Option<String> {
        match self {
            NameRule::Dns1123Subdomain => dns1123_subdomain(name),
            NameRule::SubdomainMax(max) => {
                if name.len() > max {
                    Some(format!(
                        "must be no more than {max} characters (is {})",
                        name.len()
                    ))
                } else {
                    dns1123_subdomain(name)
                }
            }
            NameRule::Dns1123Label => dns1123_label(name),
            NameRule::Dns1035Label => dns1035_label(name),
            NameRule::PathSegment => path_segment(name),
        }
    }
}

/// A name that is one URL path segment.
pub fn path_segment(s: &str) -> Option<String> {
    if s == "." || s == ".." {
        return Some(format!("may not be '{s}'"));
    }
    if s.is_empty() {
        return Some("must not be empty".into());
    }
    for bad in ['/', '%'] {
        if s.contains(bad) {
            return Some(format!("may not contain '{bad}'"));
        }
    }
    None
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn label_chars_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

/// A DNS-1123 label (RFC 1123): namespace names, port names of Services.
pub fn dns1123_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!(
            "must be no more than 63 characters (is {})",
            s.len()
        ));
    }
    if !label_chars_ok(s) {
        return Some(format!(
            "{s:?} is not a valid DNS-1123 label: use lowercase letters, digits and '-', \
             starting and ending with a letter or digit (e.g. 'my-name')"
        ));
    }
    None
}

/// A DNS-1123 subdomain: most object names.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some(format!(
            "must be no more than 253 characters (is {})",
            s.len()
        ));
    }
    if s.is_empty() || !s.split('.').all(label_chars_ok) {
        return Some(format!(
            "{s:?} is not a valid DNS-1123 subdomain: use lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit (e.g. 'example.com')"
        ));
    }
    None
}

/// A DNS-1035 label: a DNS-1123 label that starts with a letter (Service names).
pub fn dns1035_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!(
            "must be no more than 63 characters (is {})",
            s.len()
        ));
    }
    let starts_with_letter = s.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    if !starts_with_letter || !label_chars_ok(s) {
        return Some(format!(
            "{s:?} is not a valid DNS-1035 label: use lowercase letters, digits and '-', \
             starting with a letter and ending with a letter or digit (e.g. 'my-name')"
        ));
    }
    None
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A qualified name: an optional DNS subdomain prefix and `/`, then a name of up to 63
/// characters (label and annotation keys).
pub fn qualified_name(s: &str) -> Option<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some(format!("{s:?}: the prefix before '/' must not be empty"));
        }
        if let Some(problem) = dns1123_subdomain(prefix) {
            return Some(format!("{s:?}: prefix {problem}"));
        }
    }
    if name.len() > 63 {
        return Some(format!(
            "{s:?}: the name part must be no more than 63 characters (is {})",
            name.len()
        ));
    }
    if !name_part_ok(name) {
        return Some(format!(
            "{s:?} is not a valid qualified name: use letters, digits, '-', '_' and '.', \
             starting and ending with a letter or digit, with an optional DNS subdomain prefix \
             and '/' (e.g. 'app.kubernetes.io/name')"
        ));
    }
    None
}

/// A label value: empty, or up to 63 characters like the name part of a qualified name.
pub fn label_value(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!(
            "label value must be no more than 63 characters (is {})",
            s.len()
        ));
    }
    if !s.is_empty() && !name_part_ok(s) {
        return Some(format!(
            "{s:?} is not a valid label value: use letters, digits, '-', '_' and '.', starting \
             and ending with a letter or digit, or leave it empty"
        ));
    }
    None
}

/// An IANA service name (container port names): up to 15 lowercase alphanumerics and `-`,
/// at least one letter, no `--`, not starting or ending with `-`.
pub fn iana_service_name(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--");
    if ok {
        None
    } else {
        Some(format!(
            "{s:?} is not a valid port name: up to 15 lowercase letters, digits and '-', \
             with at least one letter, no '--', and no '-' at either end"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(dns1123_label("web-1").is_none());
        assert!(dns1123_label("Web").is_some());
        assert!(dns1123_label("-web").is_some());
        assert!(dns1123_label(&"a".repeat(64)).is_some());
        assert!(dns1123_subdomain("a.b-c.d").is_none());
        assert!(dns1123_subdomain("a..b").is_some());
        assert!(dns1123_subdomain("a_b").is_some());
        assert!(dns1123_subdomain("").is_some());
        assert!(dns1035_label("web").is_none());
        assert!(dns1035_label("1web").is_some());
        assert!(NameRule::SubdomainMax(52).check(&"a".repeat(53)).is_some());
        assert!(NameRule::SubdomainMax(52).check(&"a".repeat(52)).is_none());
    }

    #[test]
    fn labels_and_keys() {
        assert!(qualified_name("app").is_none());
        assert!(qualified_name("app.kubernetes.io/name").is_none());
        assert!(qualified_name("Example.com/x").is_some());
        assert!(qualified_name("/x").is_some());
        assert!(qualified_name("a/b/c").is_some());
        assert!(qualified_name("-x").is_some());
        assert!(label_value("").is_none());
        assert!(label_value("v1.2_3-x").is_none());
        assert!(label_value("has space").is_some());
        assert!(label_value(&"a".repeat(64)).is_some());
    }

    #[test]
    fn port_names() {
        assert!(iana_service_name("http").is_none());
        assert!(iana_service_name("http-2").is_none());
        assert!(iana_service_name("8080").is_some());
        assert!(iana_service_name("a--b").is_some());
        assert!(iana_service_name("a-very-long-port-name").is_some());
        assert!(iana_service_name("HTTP").is_some());
    }
}
