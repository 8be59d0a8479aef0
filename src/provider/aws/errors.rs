//! EC2's error codes as spuff's [`ProviderError`]s, each with what the user
//! can do about it.
//!
//! EC2 says almost everything with HTTP 400 and a code
//! (`InvalidInstanceID.NotFound`, `InsufficientInstanceCapacity`, …), and
//! throttles with `RequestLimitExceeded` on 503 without any rate-limit
//! header; so the code, not the status, decides the kind of error and
//! whether retrying can help.

use super::xml::{self, Ec2Error};
use crate::provider::ProviderError;

const PROVIDER: &str = "aws";

/// [`from_response`] as the HTTP client calls it.
pub(crate) fn classify(answer: &crate::provider::http::ErrorAnswer<'_>) -> ProviderError {
    from_response(
        answer.status,
        answer.body,
        answer.operation,
        answer.resource,
    )
}

/// The error for a failed EC2 call. `resource` names what a `NotFound`
/// concerns when the caller knows it (`instance`, `i-0abc…`).
pub(crate) fn from_response(
    status: u16,
    body: &[u8],
    operation: &str,
    resource: Option<(&'static str, &str)>,
) -> ProviderError {
    let Some(Ec2Error {
        code,
        message,
        request_id,
    }) = xml::error(body)
    else {
        // Not EC2's XML: a proxy's page, an empty 5xx.
        return ProviderError::Api {
            provider: PROVIDER,
            operation: operation.to_string(),
            status,
            code: None,
            message: crate::util::summarize_body(body),
            request_id: None,
        };
    };
    let message = crate::util::terminal_safe(&message).into_owned();
    let code = crate::util::terminal_safe(&code).into_owned();
    match code.as_str() {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "RequestThrottled" => {
            ProviderError::RateLimit {
                provider: PROVIDER,
                retry_after: None,
            }
        }
        "AuthFailure"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidAccessKeyId"
        | "ExpiredToken"
        | "RequestExpired" => ProviderError::Authentication {
            provider: PROVIDER,
            message: format!("{code}: {message}"),
        },
        "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "MaxSpotInstanceCountExceeded"
        | "ResourceLimitExceeded"
        | "AddressLimitExceeded"
        | "SecurityGroupLimitExceeded"
        | "KeyPairLimitExceeded" => ProviderError::QuotaExceeded {
            provider: PROVIDER,
            resource: quota_resource(&code).into(),
            message,
        },
        "InsufficientInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity" => ProviderError::Capacity {
            provider: PROVIDER,
            operation: operation.to_string(),
            code,
            message,
        },
        c if c.ends_with(".NotFound") => {
            let kind = not_found_kind(c);
            let (resource, id) = match resource {
                Some((r, id)) => (r, id.to_string()),
                None => (kind, message.clone()),
            };
            ProviderError::NotFound {
                provider: PROVIDER,
                resource,
                id,
            }
        }
        _ => ProviderError::Api {
            provider: PROVIDER,
            operation: operation.to_string(),
            status,
            code: Some(code),
            message,
            request_id,
        },
    }
}

fn quota_resource(code: &str) -> &'static str {
    match code {
        "VcpuLimitExceeded" => "vCPUs",
        "MaxSpotInstanceCountExceeded" => "spot instances",
        "AddressLimitExceeded" => "elastic IP addresses",
        "SecurityGroupLimitExceeded" => "security groups",
        "KeyPairLimitExceeded" => "key pairs",
        _ => "instances",
    }
}

fn not_found_kind(code: &str) -> &'static str {
    match code.split('.').next().unwrap_or_default() {
        "InvalidInstanceID" => "instance",
        "InvalidAMIID" => "image",
        "InvalidKeyPair" => "key pair",
        "InvalidGroup" => "security group",
        "InvalidSnapshot" => "snapshot",
        "InvalidVpcID" => "VPC",
        "InvalidSubnetID" => "subnet",
        _ => "resource",
    }
}

/// What to do about an EC2 error code, when there is more to say than the
/// generic hint of its kind.
pub(crate) fn hint(code: &str) -> Option<String> {
    Some(
        match code {
            "InsufficientInstanceCapacity" | "InsufficientCapacity" => {
                "AWS has no capacity for this size in this zone right now: try another size (--size), zone or region, or on-demand instead of --spot"
            }
            "SpotMaxPriceTooLow" => {
                "the spot price is above your maximum: raise --max-price, or leave it out to pay the current spot price (never more than on-demand)"
            }
            "UnauthorizedOperation" => {
                "the IAM user or role lacks a permission this needs (the message names the action; `aws sts decode-authorization-message` decodes the rest): grant it, or use a profile that has it"
            }
            "OptInRequired" => {
                "this region (or EC2 itself) is not enabled for the account: enable the region in the AWS console under Account → AWS Regions, or pick another region"
            }
            "IdempotentParameterMismatch" => {
                "an earlier create with the same client token had other settings: run `spuff ls` to see what exists, then retry"
            }
            "InvalidParameterValue" | "InvalidParameterCombination" => {
                "EC2 refused a setting: check --size, --region and the image for this region"
            }
            "Unsupported" => {
                "this size or option is not offered in this zone or region: pick another size or region"
            }
            "VPCIdNotSpecified" | "MissingInput" => {
                "this region has no default VPC, which spuff's VMs and security group use: create one with `aws ec2 create-default-vpc --region REGION`, or pick another region (spuff does not make VPCs of its own yet)"
            }
            "UnsupportedOperation" => {
                "EC2 cannot do this to this instance (a one-time spot VM cannot be stopped, only destroyed with `spuff down`)"
            }
            _ => return None,
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hint;

    fn body(code: &str, message: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>req-1</RequestID></Response>"
        )
        .into_bytes()
    }

    #[test]
    fn throttling_should_be_a_retryable_rate_limit() {
        for code in ["RequestLimitExceeded", "Throttling"] {
            let e = from_response(
                503,
                &body(code, "Request limit exceeded."),
                "RunInstances",
                None,
            );
            assert!(matches!(e, ProviderError::RateLimit { .. }), "{e:?}");
            assert!(e.is_retryable(), "{code}");
        }
    }

    #[test]
    fn capacity_and_price_errors_should_keep_their_code_and_hint() {
        // EC2 sends a capacity error as a 500: not a server fault to retry.
        let e = from_response(
            500,
            &body("InsufficientInstanceCapacity", "no."),
            "RunInstances",
            None,
        );
        assert!(
            matches!(&e, ProviderError::Capacity { code, .. } if code == "InsufficientInstanceCapacity"),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        assert!(e.hint().unwrap_or_default().contains("another size"));
        assert!(
            e.to_string().contains("InsufficientInstanceCapacity"),
            "{e}"
        );
        for (code, words) in [
            ("SpotMaxPriceTooLow", "--max-price"),
            ("UnauthorizedOperation", "IAM"),
            ("OptInRequired", "enable the region"),
        ] {
            let e = from_response(400, &body(code, "no."), "RunInstances", None);
            let ProviderError::Api {
                code: Some(c),
                request_id,
                status,
                ..
            } = &e
            else {
                panic!("{code}: {e:?}");
            };
            assert_eq!((c.as_str(), *status), (code, 400));
            assert_eq!(request_id.as_deref(), Some("req-1"));
            assert!(!e.is_retryable(), "{code}");
            let hint = e.hint().unwrap_or_default();
            assert!(hint.contains(words), "{code}: {hint}");
            assert!(e.to_string().contains(code), "{e}");
        }
    }

    #[test]
    fn not_found_and_quota_and_auth_should_have_their_kinds() {
        let e = from_response(
            400,
            &body(
                "InvalidInstanceID.NotFound",
                "The instance ID 'i-1' does not exist",
            ),
            "DescribeInstances",
            Some(("instance", "i-1")),
        );
        assert!(
            matches!(&e, ProviderError::NotFound { resource: "instance", id, .. } if id == "i-1"),
            "{e:?}"
        );
        let e = from_response(400, &body("InvalidKeyPair.NotFound", "gone"), "X", None);
        assert!(
            matches!(
                e,
                ProviderError::NotFound {
                    resource: "key pair",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = from_response(
            400,
            &body("VcpuLimitExceeded", "You have requested more vCPU"),
            "RunInstances",
            None,
        );
        assert!(
            matches!(&e, ProviderError::QuotaExceeded { resource, .. } if resource == "vCPUs"),
            "{e:?}"
        );
        let e = from_response(
            401,
            &body("AuthFailure", "AWS was not able to validate"),
            "X",
            None,
        );
        assert!(matches!(e, ProviderError::Authentication { .. }), "{e:?}");
    }

    #[test]
    fn bodies_that_are_not_ec2_xml_should_be_summarised() {
        let page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
        let e = from_response(502, page, "DescribeInstances", None);
        assert!(
            matches!(
                &e,
                ProviderError::Api {
                    status: 502,
                    code: None,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.is_retryable());
        // Escape sequences from a hostile server never reach the terminal.
        let e = from_response(400, &body("Bad\u{1b}[31mCode", "m\u{1b}[2Jx"), "X", None);
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }
}
