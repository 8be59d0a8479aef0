//! AWS credentials found where AWS users keep them, and said where they
//! came from.
//!
//! A user of the AWS CLI already has keys in their environment or in
//! `~/.aws/credentials` and `~/.aws/config`; spuff reads the same places in
//! the same order, so nothing needs configuring twice:
//!
//! 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with
//!    `AWS_SESSION_TOKEN` for temporary credentials);
//! 2. the profile named by the caller, else `AWS_PROFILE`, else `default`, in
//!    the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`);
//! 3. the same profile in the config file (`AWS_CONFIG_FILE`, else
//!    `~/.aws/config`, where it is `[profile NAME]`).
//!
//! The region comes from `AWS_REGION`, `AWS_DEFAULT_REGION`, then the
//! profile's `region` in the config file. Single sign-on, role assumption,
//! `credential_process` and instance roles are not read yet: a profile that
//! only has those is refused with a hint to export plain keys
//! (`aws configure export-credentials --format env`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::Secret;
use crate::provider::{ProviderError, ProviderResult};

/// A key pair (and token) to sign requests with, and where it was found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Credentials {
    /// `AKIA…` (long-term) or `ASIA…` (temporary).
    pub access_key_id: String,
    /// The secret key: never logged or shown.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Where these were found, to tell the user.
    pub source: CredentialSource,
}

impl Credentials {
    /// Credentials given directly (an SDK user's own store).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<Secret>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            source: CredentialSource::Given,
        }
    }

    /// With a session token (temporary credentials).
    pub fn with_session_token(mut self, token: impl Into<Secret>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

/// Where credentials (or a region) were found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// Passed in by the program.
    Given,
    /// `AWS_ACCESS_KEY_ID` and friends.
    Environment,
    /// A profile in a shared credentials or config file.
    Profile {
        /// The profile's name.
        profile: String,
        /// The file it was read from.
        file: PathBuf,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Given => f.write_str("given by the program"),
            CredentialSource::Environment => {
                f.write_str("environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
            }
            CredentialSource::Profile { profile, file } => {
                write!(f, "profile `{profile}` in {}", file.display())
            }
        }
    }
}

/// Credentials and region as the AWS CLI would find them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AwsEnvironment {
    /// The credentials.
    pub credentials: Credentials,
    /// The region, when one is configured, and where it was found.
    pub region: Option<(String, CredentialSource)>,
}

impl AwsEnvironment {
    /// Reads this process's environment and the user's `~/.aws` files.
    /// `profile` overrides `AWS_PROFILE`.
    ///
    /// # Errors
    /// [`ProviderError::InvalidConfig`] (field `credentials`) naming every
    /// place that was looked at, or the profile that exists but holds a kind
    /// of credentials spuff cannot use yet.
    pub fn load(profile: Option<&str>) -> ProviderResult<AwsEnvironment> {
        let home = dirs::home_dir();
        Self::load_from(&|name| std::env::var(name).ok(), home.as_deref(), profile)
    }

    /// [`AwsEnvironment::load`] with the environment and home directory
    /// given: for programs that keep their own, and for tests.
    ///
    /// # Errors
    /// As [`AwsEnvironment::load`].
    pub fn load_from(
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
        profile: Option<&str>,
    ) -> ProviderResult<AwsEnvironment> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let profile_name = profile
            .map(str::to_string)
            .or_else(|| var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let aws_dir = home.map(|h| h.join(".aws"));
        let credentials_file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| aws_dir.as_ref().map(|d| d.join("credentials")));
        let config_file = var("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| aws_dir.as_ref().map(|d| d.join("config")));
        let from_credentials = credentials_file
            .as_deref()
            .map(|f| read_profile(f, &profile_name, false))
            .transpose()?
            .flatten();
        let from_config = config_file
            .as_deref()
            .map(|f| read_profile(f, &profile_name, true))
            .transpose()?
            .flatten();

        // An explicit profile wins over the environment's keys, as in the
        // AWS CLI's `--profile`.
        let env_keys = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) if profile.is_none() => Some(Credentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                source: CredentialSource::Environment,
            }),
            (Some(_), None) | (None, Some(_)) if profile.is_none() => {
                return Err(invalid(
                    "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both, or neither to use a profile".into(),
                ));
            }
            _ => None,
        };
        let credentials = match env_keys {
            Some(c) => c,
            None => [&from_credentials, &from_config]
                .into_iter()
                .flatten()
                .find_map(|p| p.credentials())
                .transpose()?
                .ok_or_else(|| {
                    let unsupported = [&from_credentials, &from_config]
                        .into_iter()
                        .flatten()
                        .find_map(|p| p.unsupported());
                    invalid(not_found_message(
                        &profile_name,
                        credentials_file.as_deref(),
                        config_file.as_deref(),
                        unsupported,
                    ))
                })?,
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .map(|r| (r, CredentialSource::Environment))
            .or_else(|| {
                let p = from_config.as_ref()?;
                Some((p.get("region")?.to_string(), p.source()))
            });
        Ok(AwsEnvironment {
            credentials,
            region,
        })
    }
}

fn invalid(message: String) -> ProviderError {
    ProviderError::InvalidConfig {
        provider: "aws",
        field: "credentials".into(),
        message,
    }
}

fn not_found_message(
    profile: &str,
    credentials_file: Option<&Path>,
    config_file: Option<&Path>,
    unsupported: Option<&'static str>,
) -> String {
    let files = [credentials_file, config_file]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    match unsupported {
        Some(kind) => format!(
            "profile `{profile}` uses {kind}, which spuff cannot read yet; export plain keys with `aws configure export-credentials --profile {profile} --format env` and run spuff in that environment"
        ),
        None => format!(
            "no AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set and profile `{profile}` has no aws_access_key_id/aws_secret_access_key in {}; run `aws configure`, or set the variables",
            if files.is_empty() {
                "any file (no home directory)".to_string()
            } else {
                files
            }
        ),
    }
}

/// One profile's keys as read from one file.
#[derive(Debug)]
struct Profile {
    name: String,
    file: PathBuf,
    keys: HashMap<String, String>,
}

impl Profile {
    fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn source(&self) -> CredentialSource {
        CredentialSource::Profile {
            profile: self.name.clone(),
            file: self.file.clone(),
        }
    }

    fn credentials(&self) -> Option<ProviderResult<Credentials>> {
        let id = self.get("aws_access_key_id");
        let secret = self.get("aws_secret_access_key");
        match (id, secret) {
            (Some(id), Some(secret)) => Some(Ok(Credentials {
                access_key_id: id.to_string(),
                secret_access_key: Secret::new(secret),
                session_token: self.get("aws_session_token").map(Secret::new),
                source: self.source(),
            })),
            (Some(_), None) | (None, Some(_)) => Some(Err(invalid(format!(
                "profile `{}` in {} has only one of aws_access_key_id and aws_secret_access_key",
                self.name,
                self.file.display()
            )))),
            (None, None) => None,
        }
    }

    /// A kind of credentials this profile names that spuff does not read.
    fn unsupported(&self) -> Option<&'static str> {
        [
            ("sso_session", "single sign-on (sso_session)"),
            ("sso_start_url", "single sign-on (sso_start_url)"),
            ("role_arn", "role assumption (role_arn)"),
            ("credential_process", "credential_process"),
            (
                "web_identity_token_file",
                "web identity (web_identity_token_file)",
            ),
            ("credential_source", "credential_source"),
        ]
        .into_iter()
        .find(|(key, _)| self.get(key).is_some())
        .map(|(_, kind)| kind)
    }
}

/// The profile `name` from an INI file: `[name]` in the credentials file,
/// `[profile name]` (or `[default]`) in the config file. `None` when the file
/// or the section does not exist.
fn read_profile(file: &Path, name: &str, config: bool) -> ProviderResult<Option<Profile>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(invalid(format!("cannot read {}: {e}", file.display())));
        }
    };
    let wanted = |section: &str| {
        let section = section.trim();
        if config && name != "default" {
            section
                .strip_prefix("profile")
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .is_some_and(|rest| rest.trim() == name)
        } else {
            section == name || (config && section == "profile default" && name == "default")
        }
    };
    let mut keys: Option<HashMap<String, String>> = None;
    let mut inside = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(section) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            inside = wanted(section);
            if inside && keys.is_none() {
                keys = Some(HashMap::new());
            }
            continue;
        }
        // Indented lines belong to a nested block (`s3 =` and its keys).
        if !inside || line.starts_with(char::is_whitespace) {
            continue;
        }
        if let (Some(map), Some((k, v))) = (keys.as_mut(), trimmed.split_once('=')) {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Ok(keys.map(|keys| Profile {
        name: name.to_string(),
        file: file.to_path_buf(),
        keys,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn home(credentials: &str, config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        if !credentials.is_empty() {
            std::fs::write(dir.path().join(".aws/credentials"), credentials).unwrap();
        }
        if !config.is_empty() {
            std::fs::write(dir.path().join(".aws/config"), config).unwrap();
        }
        dir
    }

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = secret-default

# a comment
[work]
aws_access_key_id=ASIAWORK
aws_secret_access_key=secret-work
aws_session_token = token-work
";

    const CONFIG: &str = "\
[default]
region = eu-west-1

[profile work]
region = us-east-2
s3 =
    max_concurrent_requests = 20
    region = nowhere

[profile sso]
sso_session = corp
sso_account_id = 123456789012

[profile keys-in-config]
aws_access_key_id = AKIACONFIG
aws_secret_access_key = secret-config
";

    #[test]
    fn the_environment_should_come_first() {
        let h = home(CREDENTIALS, CONFIG);
        let e = AwsEnvironment::load_from(
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKIAENV"),
                ("AWS_SECRET_ACCESS_KEY", "secret-env"),
                ("AWS_SESSION_TOKEN", "token-env"),
                ("AWS_DEFAULT_REGION", "ap-south-1"),
            ]),
            Some(h.path()),
            None,
        )
        .unwrap();
        assert_eq!(e.credentials.access_key_id, "AKIAENV");
        assert_eq!(e.credentials.secret_access_key.expose(), "secret-env");
        assert_eq!(
            e.credentials.session_token.as_ref().map(Secret::expose),
            Some("token-env")
        );
        assert_eq!(e.credentials.source, CredentialSource::Environment);
        assert_eq!(e.region.unwrap().0, "ap-south-1");
    }

    #[test]
    fn the_default_profile_should_give_keys_and_region() {
        let h = home(CREDENTIALS, CONFIG);
        let e = AwsEnvironment::load_from(&env(&[]), Some(h.path()), None).unwrap();
        assert_eq!(e.credentials.access_key_id, "AKIADEFAULT");
        assert_eq!(
            e.credentials.session_token.map(|s| s.expose().to_owned()),
            None
        );
        let (region, source) = e.region.unwrap();
        assert_eq!(region, "eu-west-1");
        assert!(source.to_string().contains("profile `default`"), "{source}");
    }

    #[test]
    fn a_named_profile_should_read_both_files_and_skip_nested_blocks() {
        let h = home(CREDENTIALS, CONFIG);
        for (how, e) in [
            (
                "AWS_PROFILE",
                AwsEnvironment::load_from(&env(&[("AWS_PROFILE", "work")]), Some(h.path()), None),
            ),
            (
                "argument",
                AwsEnvironment::load_from(
                    &env(&[
                        ("AWS_PROFILE", "default"),
                        ("AWS_ACCESS_KEY_ID", "AKIAENV"),
                        ("AWS_SECRET_ACCESS_KEY", "secret-env"),
                    ]),
                    Some(h.path()),
                    Some("work"),
                ),
            ),
        ] {
            let e = e.unwrap();
            assert_eq!(e.credentials.access_key_id, "ASIAWORK", "{how}");
            assert_eq!(
                e.credentials.session_token.as_ref().map(Secret::expose),
                Some("token-work")
            );
            assert_eq!(e.region.unwrap().0, "us-east-2", "{how}");
            assert!(
                e.credentials.source.to_string().ends_with(&format!(
                    "{}",
                    h.path().join(".aws").join("credentials").display()
                )),
                "{how}: {}",
                e.credentials.source
            );
        }
    }

    #[test]
    fn keys_may_live_in_the_config_file() {
        let h = home("", CONFIG);
        let e =
            AwsEnvironment::load_from(&env(&[]), Some(h.path()), Some("keys-in-config")).unwrap();
        assert_eq!(e.credentials.access_key_id, "AKIACONFIG");
        assert_eq!(e.region.map(|r| r.0), None);
    }

    #[test]
    fn files_named_by_the_environment_should_be_used() {
        let h = home("", "");
        let creds = h.path().join("elsewhere");
        std::fs::write(&creds, CREDENTIALS).unwrap();
        let e = AwsEnvironment::load_from(
            &env(&[("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap())]),
            None,
            Some("work"),
        )
        .unwrap();
        assert_eq!(e.credentials.access_key_id, "ASIAWORK");
    }

    #[test]
    fn missing_or_unusable_credentials_should_say_what_to_do() {
        let h = home(CREDENTIALS, CONFIG);
        let msg = |r: ProviderResult<AwsEnvironment>| r.unwrap_err().to_string();
        let none = msg(AwsEnvironment::load_from(
            &env(&[]),
            Some(h.path()),
            Some("nope"),
        ));
        assert!(
            none.contains("profile `nope`") && none.contains("aws configure"),
            "{none}"
        );
        assert!(none.contains(".aws"), "{none}");
        let sso = msg(AwsEnvironment::load_from(
            &env(&[]),
            Some(h.path()),
            Some("sso"),
        ));
        assert!(
            sso.contains("single sign-on") && sso.contains("export-credentials"),
            "{sso}"
        );
        let half = msg(AwsEnvironment::load_from(
            &env(&[("AWS_ACCESS_KEY_ID", "AKIAENV")]),
            Some(h.path()),
            None,
        ));
        assert!(half.contains("only one of"), "{half}");
        // Never the secret itself.
        let e = AwsEnvironment::load_from(&env(&[]), Some(h.path()), None).unwrap();
        assert!(!format!("{e:?}").contains("secret-default"));
    }
}
