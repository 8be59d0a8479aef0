//! Proxmox's failures as spuff's [`ProviderError`]s.
//!
//! The message is in the body's `message` on current releases
//! (libpve-http-server ≥ 5.2.0), and only in the HTTP reason phrase before
//! (and always for the auth layer's 401s, whose body is empty). A 400
//! names each bad parameter under `errors`. A VM that does not exist is a
//! 500 "Configuration file … does not exist", not a 404. "QEMU guest agent
//! is not running" is a moment of boot, to wait out; "No QEMU guest agent
//! configured" is final.

use crate::provider::ProviderError;
use crate::provider::http::ErrorAnswer;

const PROVIDER: &str = "proxmox";

/// What a failed answer says, in words: the body's `message`, else the
/// reason phrase, plus every parameter error.
pub(crate) fn message(answer: &ErrorAnswer<'_>) -> String {
    let body: Option<serde_json::Value> = serde_json::from_slice(answer.body).ok();
    let from_body = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(|m| m.as_str())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    let mut text = from_body
        .or_else(|| answer.reason.map(|r| r.trim().to_string()))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            if body.is_some() {
                format!("HTTP {}", answer.status)
            } else {
                crate::util::summarize_body(answer.body)
            }
        });
    if let Some(errors) = body
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(|e| e.as_object())
    {
        let mut params: Vec<String> = errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("invalid").trim()))
            .collect();
        params.sort();
        if !params.is_empty() {
            text = format!("{text} ({})", params.join("; "));
        }
    }
    crate::util::terminal_safe(&text).into_owned()
}

/// The error for a failed Proxmox call.
pub(crate) fn classify(answer: &ErrorAnswer<'_>) -> ProviderError {
    let message = message(answer);
    let lower = message.to_ascii_lowercase();
    match answer.status {
        401 => ProviderError::Authentication {
            provider: PROVIDER,
            message,
        },
        // Proxmox's 403 is a missing privilege: the message names it.
        403 => ProviderError::Api {
            provider: PROVIDER,
            operation: answer.operation.to_string(),
            status: 403,
            code: Some("permission".into()),
            message,
            request_id: None,
        },
        404 => not_found(answer, message),
        500 if lower.starts_with("configuration file") && lower.contains("does not exist") => {
            not_found(answer, message)
        }
        // Not retryable: it will not appear by waiting.
        500 if lower.contains("no qemu guest agent configured") => ProviderError::InvalidConfig {
            provider: PROVIDER,
            field: "template".into(),
            message: format!(
                "{message}: the template needs `agent: 1` (qm set ID --agent enabled=1) and the qemu-guest-agent package"
            ),
        },
        status => ProviderError::Api {
            provider: PROVIDER,
            operation: answer.operation.to_string(),
            status,
            code: None,
            message,
            request_id: None,
        },
    }
}

fn not_found(answer: &ErrorAnswer<'_>, message: String) -> ProviderError {
    let (resource, id) = answer
        .resource
        .map(|(r, id)| (r, id.to_string()))
        .unwrap_or(("resource", message));
    ProviderError::NotFound {
        provider: PROVIDER,
        resource,
        id,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn dir() -> String {
        format!(
            "{}/tests/data/proxmox/reconstructed/errors",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    /// Every case of INDEX.json, in both body formats: the same kind of
    /// error and the same words, whether they came in the body or only in
    /// the reason phrase.
    #[test]
    fn every_recorded_error_should_keep_its_words_in_both_formats() {
        let index: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}/INDEX.json", dir())).unwrap(),
        )
        .unwrap();
        let cases = index["errors"].as_array().unwrap();
        assert!(cases.len() >= 15, "{}", cases.len());
        for case in cases {
            let status = case["status"].as_u64().unwrap() as u16;
            let reason = case["reason_phrase"].as_str().unwrap();
            for file in [&case["file"], &case["legacy_file"]] {
                let Some(file) = file.as_str() else { continue };
                let body = std::fs::read(format!("{}/{file}", dir())).unwrap();
                let answer = ErrorAnswer {
                    status,
                    reason: Some(reason),
                    body: &body,
                    operation: "POST /nodes/pve1/qemu/123/config",
                    resource: Some(("VM", "pve1/123")),
                };
                let e = classify(&answer);
                let text = e.to_string();
                let first_words: String = reason.chars().take(20).collect();
                assert!(
                    text.contains(&first_words) || matches!(e, ProviderError::NotFound { .. }),
                    "{file}: {text}"
                );
                match status {
                    401 => assert!(matches!(e, ProviderError::Authentication { .. }), "{file}"),
                    500 if reason.starts_with("Configuration file") => {
                        assert!(matches!(e, ProviderError::NotFound { .. }), "{file}: {e:?}")
                    }
                    500 if reason.contains("QEMU guest agent is not running") => {
                        assert!(e.is_retryable(), "{file}: a moment of boot")
                    }
                    500 if reason.contains("No QEMU guest agent configured") => {
                        assert!(!e.is_retryable(), "{file}: final")
                    }
                    400 => {
                        assert!(!e.is_retryable());
                        // The parameter at fault is named.
                        if let Some(errors) = case.get("errors_keys").and_then(Value::as_array) {
                            for k in errors {
                                assert!(text.contains(k.as_str().unwrap()), "{file}: {text}");
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn a_400_should_name_its_parameters() {
        let body =
            std::fs::read(format!("{}/400_parameter_verification_sshkeys.json", dir())).unwrap();
        let e = classify(&ErrorAnswer {
            status: 400,
            reason: Some("Parameter verification failed."),
            body: &body,
            operation: "POST /nodes/pve1/qemu/123/config",
            resource: None,
        });
        let text = e.to_string();
        assert!(text.contains("sshkeys: invalid format"), "{text}");
        // A 500 whose message only the newer body carries.
        let bpg = std::fs::read(format!(
            "{}/tests/data/proxmox/real-bodies/bpg__500_with_message.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let e = classify(&ErrorAnswer {
            status: 500,
            reason: None,
            body: &bpg,
            operation: "POST /cluster/sdn/zones",
            resource: None,
        });
        assert!(e.to_string().contains("ipam-simple not existing"), "{e}");
    }
}
