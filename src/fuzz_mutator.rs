//! A small, deterministic byte mutator for the brief stable fuzz runs in
//! the unit tests (`spuff::fuzzing`, `spuff_agent::fuzzing`): seeds from
//! real inputs, then random edits. It has no coverage feedback; the
//! cargo-fuzz targets in `fuzz/` are the real fuzzers (docs/security.md).
//! Shared by both crates' tests through `#[path]`, never built into a
//! product.

/// Tokens that parsers branch on, spliced in now and then.
const TOKENS: &[&[u8]] = &[
    b"*",
    b"?",
    b"!",
    b",",
    b"|1|",
    b"@revoked",
    b"@cert-authority",
    b"[",
    b"]:",
    b"ssh-ed25519 ",
    b"AAAAC3NzaC1lZDI1NTE5",
    b"{",
    b"}",
    b"[]",
    b"\"",
    b"null",
    b":",
    b"\\u0000",
    b"\x1b[",
    b"\xe2\x80\xae",
    b"<html>",
    b"<title>",
    b"\r\n",
    b"\r\n\r\n",
    b"%2e%2e/",
    b"../",
    b"/var/log/",
    b"GET / HTTP/1.1\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"99999999999999999999",
    b"-1",
    b"1e999",
];

/// Calls `f` with each seed, then with `rounds` mutants of them.
pub(crate) fn run(seeds: &[Vec<u8>], rounds: usize, mut f: impl FnMut(&[u8])) {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for s in seeds {
        f(s);
    }
    let fallback = [Vec::new()];
    let seeds = if seeds.is_empty() {
        &fallback[..]
    } else {
        seeds
    };
    for _ in 0..rounds {
        let mut data = seeds[next() as usize % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = if data.is_empty() {
                0
            } else {
                next() as usize % (data.len() + 1)
            };
            match next() % 6 {
                0 if !data.is_empty() => {
                    let i = at.min(data.len() - 1);
                    data[i] ^= 1 << (next() % 8);
                }
                1 => data.insert(at, next() as u8),
                2 if at < data.len() => {
                    let end = (at + 1 + next() as usize % 16).min(data.len());
                    data.drain(at..end);
                }
                3 => {
                    let t = TOKENS[next() as usize % TOKENS.len()];
                    data.splice(at..at, t.iter().copied());
                }
                4 if at < data.len() => {
                    let end = (at + 1 + next() as usize % 64).min(data.len());
                    let chunk = data[at..end].to_vec();
                    data.splice(at..at, chunk);
                }
                _ => {
                    let other = &seeds[next() as usize % seeds.len()];
                    let from = if other.is_empty() {
                        0
                    } else {
                        next() as usize % other.len()
                    };
                    data.truncate(at);
                    data.extend_from_slice(&other[from..]);
                }
            }
        }
        f(&data);
    }
}
