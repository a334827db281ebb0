//! What an e-mail address, a password and a display name must look like.

use crate::error::{AppError, Result};

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_DISPLAY_NAME_CHARS: usize = 50;
/// zxcvbn's score a password needs: 2 means at least 10^6 guesses. Below it
/// are the 30,000 most common passwords zxcvbn bundles, with the usual
/// decorations (capitals, l33t, reversed, repeated, digits or a year added)
/// and keyboard walks and sequences.
pub const MIN_PASSWORD_SCORE: zxcvbn::Score = zxcvbn::Score::Two;

/// Lower-cases and checks an address: one `@`, a dotted domain, no spaces.
pub fn normalise_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let invalid = |why: &str| AppError::BadRequest(format!("email is not a valid address: {why}"));
    if email.is_empty() {
        return Err(invalid("it is empty"));
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid("it is longer than 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("it has no @"));
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(invalid(
            "the part before @ must be 1 to 64 characters, with one @",
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains spaces or control characters"));
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty() && !l.starts_with('-') && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !domain.contains('.') || !labels_ok {
        return Err(invalid("the domain must look like example.com"));
    }
    Ok(email)
}

pub fn check_password(password: &str, email: &str) -> Result<()> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AppError::BadRequest(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, got {chars}"
        )));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err(AppError::BadRequest(
            "password must use at least 4 different characters".into(),
        ));
    }
    if password.trim().eq_ignore_ascii_case(email) {
        return Err(AppError::BadRequest(
            "password must not be the email address".into(),
        ));
    }
    let local_part = email.split('@').next().unwrap_or_default();
    let estimate = zxcvbn::zxcvbn(password, &[email, local_part]);
    if estimate.score() < MIN_PASSWORD_SCORE {
        let why = estimate
            .feedback()
            .and_then(|feedback| feedback.warning())
            .map(|warning| format!(" ({warning})"))
            .unwrap_or_default();
        return Err(AppError::BadRequest(format!(
            "password is too common or too easy to guess{why}: choose a longer phrase of \
             unrelated words"
        )));
    }
    Ok(())
}

pub fn check_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(format!(
            "displayName must be 1 to {MAX_DISPLAY_NAME_CHARS} printable characters"
        )));
    }
    Ok(name.to_owned())
}

/// The display name of an account that did not choose one: the address's
/// local part.
pub fn default_display_name(email: &str) -> String {
    email
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .take(MAX_DISPLAY_NAME_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@-x.com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
        assert!(normalise_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn passwords_follow_the_rules() {
        assert!(check_password("correct horse battery", "ada@example.com").is_ok());
        assert!(check_password("short", "ada@example.com").is_err());
        assert!(check_password(&"ab".repeat(65), "ada@example.com").is_err());
        assert!(check_password("aaaaaaaaaaaa", "ada@example.com").is_err());
        assert!(check_password("ada@example.com", "ada@example.com").is_err());
    }

    #[test]
    fn common_and_guessable_passwords_are_refused() {
        for common in [
            "1234567890",
            "qwertyuiop",
            "password1234",
            "Password123!",
            "p@ssw0rd123",
            "iloveyou123",
            "sunshine2024",
            "1q2w3e4r5t",
            "trustno1trustno1",
            "ada@example.com1",
        ] {
            let error = check_password(common, "ada@example.com")
                .expect_err(common)
                .to_string();
            assert!(
                error.contains("too common or too easy to guess"),
                "{common}: {error}"
            );
        }
        for fine in [
            "correct horse battery",
            "fuzzing password 1",
            "a long browser password",
        ] {
            assert!(check_password(fine, "ada@example.com").is_ok(), "{fine}");
        }
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(check_display_name("  Ada ").ok().as_deref(), Some("Ada"));
        assert!(check_display_name("   ").is_err());
        assert!(check_display_name(&"x".repeat(51)).is_err());
        assert!(check_display_name("a\u{7}b").is_err());
        assert_eq!(default_display_name("ada@example.com"), "ada");
    }
}
