//! Amazon Web Services: the pieces of the EC2 provider (issue 15).
//!
//! spuff talks to EC2 without the AWS SDK: its compile time and binary
//! size are what its users complain about first, and EC2's Query API is a
//! signed form POST with an XML answer, which our one HTTP client already
//! carries. This module holds what that needs: request signing
//! ([`sigv4`]) and the credentials and region an AWS user already has
//! configured ([`credentials`]).

mod client;
pub mod credentials;
mod ec2;
pub(crate) mod errors;
mod query;
pub mod sigv4;
mod xml;

pub use credentials::{AwsEnvironment, CredentialSource, Credentials};
pub use ec2::{AwsConfig, DEFAULT_ADDRESS_URL, DEFAULT_REGION, Ec2, Factory, SECURITY_GROUP};
