//! The login name a student types: what we accept. It travels with each
//! request (in forms and links), never in the process, so two students at
//! the same moment each keep their own.

/// The longest login name, in characters.
pub const MAX_LOGIN_CHARS: usize = 64;

/// Why a login name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginProblem {
    /// Nothing typed, or only spaces.
    Empty,
    /// More than [`MAX_LOGIN_CHARS`] characters.
    TooLong,
    /// Control characters (newlines, tabs, escapes), which would break
    /// file names and log lines.
    ControlCharacters,
}

/// Checks a login name and returns it without surrounding spaces.
pub fn check_login(raw: Option<&str>) -> Result<String, LoginProblem> {
    let login = raw.unwrap_or("").trim();
    if login.is_empty() {
        return Err(LoginProblem::Empty);
    }
    if login.chars().count() > MAX_LOGIN_CHARS {
        return Err(LoginProblem::TooLong);
    }
    if login.chars().any(char::is_control) {
        return Err(LoginProblem::ControlCharacters);
    }
    Ok(login.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_are_checked() {
        let long = "あ".repeat(MAX_LOGIN_CHARS);
        let too_long = "a".repeat(MAX_LOGIN_CHARS + 1);
        let cases: [(Option<&str>, Result<&str, LoginProblem>); 10] = [
            (Some("taro"), Ok("taro")),
            (Some("  s1234567 \t"), Ok("s1234567")),
            (Some("山田 花子"), Ok("山田 花子")),
            (Some(long.as_str()), Ok(long.as_str())),
            (Some("<script>alert(1)</script>"), Ok("<script>alert(1)</script>")),
            (None, Err(LoginProblem::Empty)),
            (Some("   "), Err(LoginProblem::Empty)),
            (Some(too_long.as_str()), Err(LoginProblem::TooLong)),
            (Some("ta\nro"), Err(LoginProblem::ControlCharacters)),
            (Some("ta\u{1b}[31mro"), Err(LoginProblem::ControlCharacters)),
        ];
        for (input, expected) in cases {
            assert_eq!(check_login(input), expected.map(str::to_string), "{input:?}");
        }
    }
}
