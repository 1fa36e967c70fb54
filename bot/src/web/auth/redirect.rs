//! Where the login page may send people, and what it may say to them.
//!
//! `next` (where to go after logging in) comes from the query string, so anyone can craft a
//! login link with it. Only a path on our own origin is kept: browsers drop tabs and line
//! breaks from URLs (`/%09/host` becomes `//host`, another site), read `\` as `/`, and a
//! `Location` header cannot carry CR or LF at all. Anything doubtful becomes `/`.
//!
//! `/login?error=` carries a code, never text: each known code maps to a fixed message, so a
//! crafted link cannot make the login page say "call this number".

use url::Url;

/// Longest `next` kept: longer ones are not links anyone followed from the dashboard.
const MAX_NEXT_LEN: usize = 2048;

/// `next` when it is a same-origin path that browsers cannot turn into another site's URL,
/// else `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if is_local_path(next) => next.to_owned(),
        _ => "/".to_owned(),
    }
}

fn is_local_path(next: &str) -> bool {
    if next.len() > MAX_NEXT_LEN || !next.starts_with('/') || next.starts_with("//") {
        return false;
    }
    // Visible ASCII only: no whitespace or control characters a browser would drop or a
    // header would refuse; a path with other characters arrives percent-encoded anyway.
    if !next.bytes().all(|b| b.is_ascii_graphic()) || next.contains('\\') {
        return false;
    }
    // Decoded, no control character, backslash or leading `//` either: `/%0d%0a...`,
    // `/%2f/host`, `/%5c/host` are refused too, whatever a proxy in front of us decodes.
    // (An encoded space stays allowed: searches carry them.)
    let decoded = percent_decode(next);
    let decoded = String::from_utf8_lossy(&decoded);
    if decoded.starts_with("//") || decoded.chars().any(|c| c.is_control() || c == '\\') {
        return false;
    }
    // Finally, as a relative reference it must resolve to our own origin, and stay a path
    // there after dot segments are removed (`/..//host` would serialize as `//host`).
    let Ok(base) = Url::parse("http://opsbot.invalid/") else {
        return false;
    };
    match base.join(next) {
        Ok(url) => {
            url.origin() == base.origin()
                && url.username().is_empty()
                && url.password().is_none()
                && !url.path().starts_with("//")
        }
        Err(_) => false,
    }
}

/// `%XX` sequences decoded to bytes; anything else kept as is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits are at most 255.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Why a login did not work, as a code in `/login?error=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    WrongToken,
    /// The OAuth state cookie is missing or too old.
    Expired,
    /// Discord's answer carries another login's state.
    StateMismatch,
    /// Discord (or the person) did not authorize the login.
    DiscordDenied,
    /// Discord could not be asked, or answered nonsense.
    DiscordFailed,
    DiscordOff,
}

impl LoginError {
    const ALL: [LoginError; 6] = [
        LoginError::WrongToken,
        LoginError::Expired,
        LoginError::StateMismatch,
        LoginError::DiscordDenied,
        LoginError::DiscordFailed,
        LoginError::DiscordOff,
    ];

    pub fn code(self) -> &'static str {
        match self {
            LoginError::WrongToken => "wrong-token",
            LoginError::Expired => "expired",
            LoginError::StateMismatch => "state-mismatch",
            LoginError::DiscordDenied => "discord-denied",
            LoginError::DiscordFailed => "discord-failed",
            LoginError::DiscordOff => "discord-off",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            LoginError::WrongToken => "That dashboard token is not right.",
            LoginError::Expired => {
                "The login took too long or was started in another browser; try again."
            }
            LoginError::StateMismatch => {
                "Discord's answer does not belong to this login; start again from this page."
            }
            LoginError::DiscordDenied => "Discord did not authorize the login.",
            LoginError::DiscordFailed => {
                "opsbot could not check your Discord account; try again, or ask an admin to read opsbot's log."
            }
            LoginError::DiscordOff => "Discord login is not configured.",
        }
    }

    /// The message of a code from the query string; nothing for codes we never send.
    pub fn message_of(code: &str) -> &'static str {
        Self::ALL
            .iter()
            .find(|e| e.code() == code)
            .map_or("", |e| e.message())
    }

    /// `/login?error=CODE&next=NEXT`.
    pub fn location(self, next: &str) -> String {
        format!(
            "/login?error={}&next={}",
            self.code(),
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_our_origin_are_kept() {
        for good in [
            "/",
            "/chain",
            "/deploys/12",
            "/?outcome=denied&q=a%20b",
            "/events/3#top",
            "/%C3%A9v%C3%A9nements",
            "/?q=a%20b+c",
        ] {
            assert_eq!(safe_next(Some(good)), good, "{good:?}");
        }
        for bad in [
            "/\t/evil.example",
            "/\n/evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\r\nSet-Cookie:x",
            "/%0d%0aSet-Cookie:x",
            "/%09/evil.example",
            "/%2f/evil.example",
            "/%2F%2Fevil.example",
            "/%5cevil.example",
            "/%00",
            "/%7f",
            "/%c2%85",
            "/a b",
            "/\u{a0}x",
            "/é",
            "/..//evil.example",
            "/%2e%2e//evil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(3000)))), "/");
    }

    #[test]
    fn error_codes_map_to_fixed_messages() {
        for error in LoginError::ALL {
            assert_eq!(LoginError::message_of(error.code()), error.message());
        }
        assert_eq!(LoginError::message_of("Call +1 555 0100 to unlock"), "");
        assert_eq!(
            LoginError::WrongToken.location("/a?b=c"),
            "/login?error=wrong-token&next=%2Fa%3Fb%3Dc"
        );
    }
}
