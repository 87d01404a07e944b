//! Who may change the hosts: git's allowed-signers file and SSH commit signatures.
//!
//! The file is the one `git` reads through `gpg.ssh.allowedSignersFile` (format of
//! `ssh-keygen(1)`, ALLOWED SIGNERS): one key per line,
//! `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`, with the options
//! `namespaces="git,…"`, `valid-after=` and `valid-before=` (`YYYYMMDD[HHMM[SS]][Z]`,
//! read as UTC) and `cert-authority` (certificates are not supported: such lines
//! are reported and never match). A commit is trusted when its `gpgsig` header is
//! an SSHSIG in namespace `git` (what `git -c gpg.format=ssh` makes) whose key is
//! listed for namespace `git`, valid at the commit's committer time (as git checks
//! it), and the signature over the commit without that header verifies
//! (`ssh-key`). Anything else is refused with the reason.

use std::path::Path;

use ssh_key::{HashAlg, PublicKey, SshSig};

/// The namespace git signs commits in.
const NAMESPACE: &str = "git";

/// One usable line of the file.
#[derive(Debug, Clone)]
struct Signer {
    principals: String,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// The parsed allowed-signers file.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    signers: Vec<Signer>,
    /// Lines that could not be used, as `LINE: why` (logged at start).
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignersError {
    #[error("cannot read allowed signers {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("allowed signers {path} lists no usable key ({})", .skipped.join("; "))]
    Empty { path: String, skipped: Vec<String> },
}

/// Why a commit's signature is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("the commit is not signed")]
    Unsigned,
    #[error("the commit's signature is not an SSH signature ({0})")]
    NotSsh(String),
    #[error("the signature is for namespace {0:?}, not \"git\"")]
    Namespace(String),
    #[error("signed by {0}, a key not in the allowed signers for namespace \"git\"")]
    UnknownKey(String),
    #[error("signed by {key} ({principals}), whose key is not valid at the commit's time")]
    Expired { key: String, principals: String },
    #[error("the signature by {key} ({principals}) does not verify: {error}")]
    Bad {
        key: String,
        principals: String,
        error: String,
    },
}

impl AllowedSigners {
    /// Read the file; a file without a single usable key is an error.
    pub fn load(path: &Path) -> Result<Self, SignersError> {
        let text = std::fs::read_to_string(path).map_err(|error| SignersError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let signers = Self::parse(&text);
        if signers.signers.is_empty() {
            return Err(SignersError::Empty {
                path: path.display().to_string(),
                skipped: signers.skipped,
            });
        }
        Ok(signers)
    }

    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok(signer) => out.signers.push(signer),
                Err(why) => out.skipped.push(format!("line {}: {why}", number + 1)),
            }
        }
        out
    }

    /// The principals of the key that made this valid signature over `signed`
    /// (`armored`: the commit's `gpgsig` header), at committer time `time`.
    pub fn verify(&self, armored: &[u8], signed: &[u8], time: i64) -> Result<String, Untrusted> {
        let text = String::from_utf8_lossy(armored);
        if !text.contains("BEGIN SSH SIGNATURE") {
            let kind = if text.contains("BEGIN PGP") {
                "OpenPGP"
            } else {
                "unknown format"
            };
            return Err(Untrusted::NotSsh(kind.into()));
        }
        let signature = SshSig::from_pem(armored).map_err(|e| Untrusted::NotSsh(e.to_string()))?;
        if signature.namespace() != NAMESPACE {
            return Err(Untrusted::Namespace(signature.namespace().into()));
        }
        let key = PublicKey::from(signature.public_key().clone());
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let listed: Vec<&Signer> = self
            .signers
            .iter()
            .filter(|s| s.key.key_data() == signature.public_key())
            .filter(|s| {
                s.namespaces
                    .as_ref()
                    .is_none_or(|n| n.iter().any(|n| n == NAMESPACE))
            })
            .collect();
        let Some(first) = listed.first() else {
            return Err(Untrusted::UnknownKey(fingerprint));
        };
        let Some(signer) = listed.iter().find(|s| {
            s.valid_after.is_none_or(|t| time >= t) && s.valid_before.is_none_or(|t| time < t)
        }) else {
            return Err(Untrusted::Expired {
                key: fingerprint,
                principals: first.principals.clone(),
            });
        };
        signer
            .key
            .verify(NAMESPACE, signed, &signature)
            .map_err(|error| Untrusted::Bad {
                key: fingerprint,
                principals: signer.principals.clone(),
                error: error.to_string(),
            })?;
        Ok(signer.principals.clone())
    }
}

/// `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`.
fn parse_line(line: &str) -> Result<Signer, String> {
    let (principals, rest) = split_field(line);
    let principals = principals.trim_matches('"').to_string();
    let (second, after) = split_field(rest);
    let (options, key_text) = if is_key_type(second) {
        ("", rest)
    } else {
        (second, after)
    };
    let mut signer = Signer {
        principals,
        key: PublicKey::from_openssh(key_text.trim()).map_err(|e| format!("bad key: {e}"))?,
        namespaces: None,
        valid_after: None,
        valid_before: None,
    };
    for option in split_options(options) {
        let (name, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                signer.namespaces = Some(value.split(',').map(|n| n.trim().to_string()).collect())
            }
            "valid-after" => signer.valid_after = Some(timestamp(value)?),
            "valid-before" => signer.valid_before = Some(timestamp(value)?),
            "cert-authority" => return Err("cert-authority keys are not supported".into()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(signer)
}

fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-") || word.starts_with("ecdsa-") || word.starts_with("sk-")
}

/// The first field (up to unquoted whitespace) and the rest.
fn split_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..i], &text[i..]),
            _ => {}
        }
    }
    (text, "")
}

/// Comma-separated options; commas inside quotes belong to the value.
fn split_options(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]` as seconds since the epoch (UTC).
fn timestamp(text: &str) -> Result<i64, String> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    let bad = || format!("bad time {text:?}: expected YYYYMMDD[HHMM[SS]][Z]");
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let field =
        |range: std::ops::Range<usize>| digits.get(range).map_or(0, |s| s.parse().unwrap_or(0));
    let (year, month, day) = (field(0..4), field(4..6), field(6..8));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + field(8..10) * 3600 + field(10..12) * 60 + field(12..14))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItTiQ3TmCD5l+iUfTklqh0PRX4nvir41MPzvq2WyJOB";

    #[test]
    fn lines_with_options_quotes_and_comments_parse() {
        let text = format!(
            "# admins\n\
             alice@example.org {KEY} alice\n\
             \"bob@example.org,carol@*\" namespaces=\"file,git\",valid-after=\"20250101\",valid-before=\"20300101Z\" {KEY}\n\
             ca@example.org cert-authority {KEY}\n\
             broken ssh-ed25519 notbase64\n"
        );
        let signers = AllowedSigners::parse(&text);
        assert_eq!(signers.signers.len(), 2);
        assert_eq!(signers.signers[0].principals, "alice@example.org");
        assert_eq!(signers.signers[1].principals, "bob@example.org,carol@*");
        assert_eq!(
            signers.signers[1].namespaces.as_deref(),
            Some(&["file".to_string(), "git".to_string()][..])
        );
        assert_eq!(signers.signers[1].valid_after, Some(1_735_689_600));
        assert_eq!(signers.signers[1].valid_before, Some(1_893_456_000));
        assert_eq!(signers.skipped.len(), 2, "{:?}", signers.skipped);
        assert!(signers.skipped[0].starts_with("line 4: cert-authority"));
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(timestamp("19700101"), Ok(0));
        assert_eq!(timestamp("20000229120000Z"), Ok(951_825_600));
        assert_eq!(timestamp("202401011230"), Ok(1_704_112_200));
        assert!(timestamp("2024").is_err());
        assert!(timestamp("20241301").is_err());
    }

    #[test]
    fn a_signature_that_is_not_ssh_or_not_listed_is_untrusted() {
        let signers = AllowedSigners::parse(&format!("a@example.org {KEY}\n"));
        assert_eq!(
            signers.verify(b"-----BEGIN PGP SIGNATURE-----\n", b"x", 0),
            Err(Untrusted::NotSsh("OpenPGP".into()))
        );
        assert!(matches!(
            signers.verify(
                b"-----BEGIN SSH SIGNATURE-----\ngarbage\n-----END SSH SIGNATURE-----\n",
                b"x",
                0
            ),
            Err(Untrusted::NotSsh(_))
        ));
    }
}
