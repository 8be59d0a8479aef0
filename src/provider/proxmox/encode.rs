//! How values must be written for Proxmox.
//!
//! `sshkeys` has the format `urlencoded`: after the HTTP layer has decoded
//! the request, the value must still be percent-encoded, matching
//! `^[-%a-zA-Z0-9_.!~*'()]*$`. spuff sends JSON bodies (accepted since
//! 2020), so the keys are encoded exactly once, with `%20` for spaces and
//! never `+`. JSON bodies also avoid the form decoder's traps (pairs split
//! on `;` too, values cut at a second `=`).

/// The `sshkeys` value for these public keys: newline-joined, then every
/// byte but `A-Z a-z 0-9 - _ . ~` percent-encoded (upper-case hex).
pub(crate) fn sshkeys<S: AsRef<str>>(keys: &[S]) -> String {
    let joined: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    percent(&joined.join("\n"))
}

/// Percent-encodes everything but the unreserved characters.
pub(crate) fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a value passes Proxmox's `urlencoded` format check.
pub(crate) fn is_urlencoded(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-%_.!~*'()".contains(&b))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn vectors(name: &str) -> Value {
        let path = format!(
            "{}/tests/data/proxmox/encoding/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn sshkeys_should_match_go_proxmoxs_vectors() {
        let v = vectors("go-proxmox__EncodeSSHKeys_vectors.json");
        for case in v["cases"].as_array().unwrap() {
            let keys: Vec<&str> = case["in"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
            let got = sshkeys(&keys);
            assert_eq!(got, case["want"].as_str().unwrap(), "{}", case["name"]);
            assert!(!got.contains('+') && is_urlencoded(&got));
        }
    }

    #[test]
    fn sshkeys_should_match_the_reconstructed_json_body() {
        let v = vectors("sshkeys-and-form-encoding.RECONSTRUCTED.json");
        let raw = v["raw_keys"].as_str().unwrap();
        // The raw keys end with a newline: one more (empty) line.
        let keys: Vec<&str> = raw.split('\n').collect();
        assert_eq!(sshkeys(&keys), v["sshkeys_param_value"].as_str().unwrap());
    }

    #[test]
    fn telmates_authorized_keys_should_encode_to_what_proxmox_stores() {
        let v = vectors("telmate__authorizedkey_vectors.json");
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let (keys, encoded) = (
            strings("trimmed_output_keys"),
            strings("encoded_output_keys"),
        );
        assert_eq!(keys.len(), encoded.len());
        for (key, want) in keys.iter().zip(&encoded) {
            assert_eq!(&percent(key), want, "{key}");
        }
        // All of them, ending with a newline, as the API stores them.
        let mut with_end = keys.clone();
        with_end.push(String::new());
        assert_eq!(sshkeys(&with_end), v["encoded_output"].as_str().unwrap());
    }
}
