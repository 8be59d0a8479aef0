//! Entry points for fuzzing the parsers that read untrusted input (issue
//! 13). Built only for the unit tests and under cargo-fuzz (`--cfg
//! fuzzing`, the targets in `fuzz/`), never into the product. Each takes
//! arbitrary bytes, feeds them to the parser exactly as the product does,
//! and asserts what must hold; a panic is a finding.
//!
//! `cargo test --lib fuzzing` runs each briefly on stable (seeds from real
//! inputs, then random mutants); docs/security.md has the cargo-fuzz
//! commands for coverage-guided runs.

/// A known_hosts file (the user's, or one a tool wrote), read for a few
/// hosts, `@revoked` lines included.
pub fn known_hosts(data: &[u8]) {
    crate::ssh::fuzz_known_hosts(data);
}

/// A provider's server object (DigitalOcean droplet, Hetzner server) as
/// the API returned it, turned into an instance.
pub fn provider_instance(data: &[u8]) {
    crate::provider::fuzzing::instance(data);
}

/// A provider's error body (JSON, an HTML page from a proxy, anything): the
/// message shown is bounded and terminal-safe.
pub fn provider_error(data: &[u8]) {
    crate::provider::fuzzing::error_body(data);
}

#[cfg(test)]
#[path = "fuzz_mutator.rs"]
mod mutator;

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(dir: &str, extra: &[&[u8]]) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().extension().is_none_or(|x| x == "json"))
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.extend(extra.iter().map(|s| s.to_vec()));
        out
    }

    const ROUNDS: usize = 20_000;

    #[test]
    fn known_hosts_survives_mutants() {
        let seeds = seeds(
            "fuzz/seeds/known_hosts",
            &[
                b"example.com,[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n",
                b"|1|JfKTdBh7rNbXkVAQCRp4OQoPfmI=|USECr3SWf1JUPsms5AqfD5QfxkM= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X\n",
                b"@revoked * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n# c\n!*.example.com,*.com ssh-rsa AAAA\n",
            ],
        );
        mutator::run(&seeds, ROUNDS, known_hosts);
    }

    #[test]
    fn provider_bodies_survive_mutants() {
        let mut all = seeds("tests/data/digitalocean", &[]);
        all.extend(seeds("tests/data/hetzner", &[]));
        assert!(all.len() > 10, "the provider fixtures are the seeds");
        // Whole list bodies are seeds too: their objects are what a
        // mutant most often turns into.
        mutator::run(&all, ROUNDS, |d| {
            provider_instance(d);
            provider_error(d);
        });
        let pages: Vec<Vec<u8>> = vec![
            b"<!DOCTYPE html><html><head><title>502 Bad\x1b[2J Gateway</title></head></html>"
                .to_vec(),
            b"{\"id\":\"forbidden\",\"message\":\"You\\u001b]0;x\\u0007 are not allowed\"}"
                .to_vec(),
            b"{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":null}}".to_vec(),
        ];
        mutator::run(&pages, ROUNDS, provider_error);
    }
}
