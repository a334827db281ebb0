//! Short-lived login tokens: compact JWTs (HS256, RFC 7519) signed with the
//! key from the Secret, through the aws-lc-rs HMAC rustls already builds.
//! Only `alg: HS256` is accepted, so a forged `none` or RSA header fails.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

const ISSUER: &str = "movieapp-api-worker";
/// The header every token carries; tokens with any other header are refused.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (a UUID).
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is malformed")]
    Malformed,
    #[error("the bearer token's signature is invalid")]
    BadSignature,
    #[error("the bearer token has expired; log in again")]
    Expired,
}

pub struct TokenSigner {
    key: hmac::Key,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"[redacted]")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: &str, now: u64) -> String {
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: ISSUER.into(),
        };
        // Serialising a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        if header != HEADER.as_bytes() {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Malformed);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(900),
        )
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let signer = signer();
        let token = signer.issue("u-1", 1_000);
        let claims = signer.verify(&token, 1_100).expect("valid");
        assert_eq!(claims.sub, "u-1");
        assert_eq!(claims.exp, 1_900);
        assert_eq!(signer.verify(&token, 1_900), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let signer = signer();
        let token = signer.issue("u-1", 1_000);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = URL_SAFE_NO_PAD
            .encode(r#"{"sub":"u-2","iat":1000,"exp":999999,"iss":"movieapp-api-worker"}"#);
        parts[1] = forged;
        assert_eq!(
            signer.verify(&parts.join("."), 1_100),
            Err(TokenError::BadSignature)
        );

        let other = TokenSigner::new(
            b"another key, another key, another",
            Duration::from_secs(900),
        );
        assert_eq!(
            signer.verify(&other.issue("u-1", 1_000), 1_100),
            Err(TokenError::BadSignature)
        );

        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(signer.verify(&none_alg, 1_100), Err(TokenError::Malformed));
        for garbage in ["", "a.b", "a.b.c.d", "!!!.???.***"] {
            assert_eq!(
                signer.verify(garbage, 1_100),
                Err(TokenError::Malformed),
                "{garbage}"
            );
        }
    }
}
