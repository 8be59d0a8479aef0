//! Integration tests: one binary, topic modules, real OpenSSH peers.

mod fakecloud;
mod util;

mod forward;
mod provider_digitalocean;
mod sftp;
mod ssh_auth;
mod ssh_concurrency;
mod ssh_exec;
mod ssh_host_keys;
mod ssh_shell;
