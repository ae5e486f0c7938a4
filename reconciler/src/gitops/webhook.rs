//! Webhooks from Git hosts (`POST /hooks/git/{source}`): a push tells ferry to fetch at once
//! instead of waiting for the next poll. GitHub signs the body with HMAC-SHA256
//! (`X-Hub-Signature-256: sha256=<hex>`); GitLab sends the shared secret
//! (`X-Gitlab-Token`). Without a configured secret every webhook is refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No secret is configured, so no webhook can be trusted.
    #[error("webhooks are disabled: start ferry with --webhook-secret-file")]
    NoSecret,
    /// Neither a GitHub signature nor a GitLab token came with the request.
    #[error("the request carries neither X-Hub-Signature-256 nor X-Gitlab-Token")]
    Unsigned,
    /// The signature or token does not match.
    #[error("the webhook signature does not match")]
    BadSignature,
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks a webhook: `github_signature` is the `X-Hub-Signature-256` header, `gitlab_token`
/// the `X-Gitlab-Token` header.
pub fn verify(
    secret: Option<&[u8]>,
    body: &[u8],
    github_signature: Option<&str>,
    gitlab_token: Option<&str>,
) -> Result<(), WebhookError> {
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(WebhookError::NoSecret)?;
    if let Some(signature) = github_signature {
        let expected = signature
            .strip_prefix("sha256=")
            .and_then(hex_decode)
            .ok_or(WebhookError::BadSignature)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
        mac.update(body);
        // Constant-time comparison.
        return mac
            .verify_slice(&expected)
            .map_err(|_| WebhookError::BadSignature);
    }
    if let Some(token) = gitlab_token {
        let (a, b) = (token.as_bytes(), secret);
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        return if same {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        };
    }
    Err(WebhookError::Unsigned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("key");
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn github_and_gitlab() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign(b"s3cret", body);
        assert_eq!(verify(Some(b"s3cret"), body, Some(&good), None), Ok(()));
        assert_eq!(
            verify(Some(b"other"), body, Some(&good), None),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(Some(b"s3cret"), b"tampered", Some(&good), None),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(verify(Some(b"s3cret"), body, None, Some("s3cret")), Ok(()));
        assert_eq!(
            verify(Some(b"s3cret"), body, None, Some("nope")),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(Some(b"s3cret"), body, None, None),
            Err(WebhookError::Unsigned)
        );
        assert_eq!(
            verify(None, body, Some(&good), None),
            Err(WebhookError::NoSecret)
        );
    }
}
