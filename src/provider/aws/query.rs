//! EC2 Query requests: an action, the API version and flattened
//! parameters, sent as one form body.
//!
//! EC2's protocol flattens everything into `Name=value` pairs: lists as
//! `Name.1`, `Name.2` (1-based), structures as `Name.Member`, lists of
//! structures as `Name.1.Member`. Values are percent-encoded with only the
//! unreserved characters left as they are (`:` in a timestamp and `=` in
//! base64 are escaped), as AWS's SDKs do. Checked against botocore's EC2
//! protocol tests (`tests/data/aws/ec2-protocol-tests`).

use super::sigv4::uri_encode;

/// The EC2 API version spuff speaks (the current one; EC2 has kept it since
/// 2016 and adds to it).
pub(crate) const EC2_VERSION: &str = "2016-11-15";

/// The content type of a Query body.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// One EC2 request's parameters, in the order they were set.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    /// `Action=…&Version=2016-11-15`.
    pub(crate) fn new(action: &str) -> Query {
        Query::with_version(action, EC2_VERSION)
    }

    /// With another API version.
    pub(crate) fn with_version(action: &str, version: &str) -> Query {
        Query {
            params: vec![
                ("Action".into(), action.into()),
                ("Version".into(), version.into()),
            ],
        }
    }

    /// The action's name, for messages.
    pub(crate) fn action(&self) -> &str {
        &self.params[0].1
    }

    /// One parameter; `name` may be dotted (`Placement.AvailabilityZone`).
    pub(crate) fn set(mut self, name: impl Into<String>, value: impl ToString) -> Query {
        self.params.push((name.into(), value.to_string()));
        self
    }

    /// One parameter when there is a value.
    pub(crate) fn set_opt(self, name: &str, value: Option<impl ToString>) -> Query {
        match value {
            Some(v) => self.set(name, v),
            None => self,
        }
    }

    /// A list of values: `name.1`, `name.2`, …
    pub(crate) fn list<V: ToString>(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Query {
        for (i, v) in values.into_iter().enumerate() {
            self.params
                .push((format!("{name}.{}", i + 1), v.to_string()));
        }
        self
    }

    /// A list of structures: `fields` gives each item's members (which may
    /// themselves be dotted), placed under `name.N.`.
    pub(crate) fn each<T>(
        mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        fields: impl Fn(T) -> Vec<(String, String)>,
    ) -> Query {
        for (i, item) in items.into_iter().enumerate() {
            for (member, value) in fields(item) {
                self.params
                    .push((format!("{name}.{}.{member}", i + 1), value));
            }
        }
        self
    }

    /// EC2's filters: `Filter.N.Name` and `Filter.N.Value.M`.
    pub(crate) fn filters(self, filters: &[(&str, &[&str])]) -> Query {
        self.each("Filter", filters, |(name, values)| {
            let mut out = vec![("Name".to_string(), name.to_string())];
            for (i, v) in values.iter().enumerate() {
                out.push((format!("Value.{}", i + 1), v.to_string()));
            }
            out
        })
    }

    /// The form body.
    pub(crate) fn body(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The body botocore's EC2 protocol test `id` expects.
    fn expected(id: &str) -> String {
        let suites: Value = serde_json::from_str(include_str!(
            "../../../tests/data/aws/ec2-protocol-tests/botocore-protocols-input-ec2.json"
        ))
        .unwrap();
        suites
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["cases"].as_array().unwrap())
            .find(|c| c["id"] == id)
            .and_then(|c| c["serialized"]["body"].as_str())
            .unwrap_or_else(|| panic!("no case {id}"))
            .to_string()
    }

    const V: &str = "2020-01-08";

    #[test]
    fn bodies_should_match_botocores_protocol_tests() {
        let cases = [
            (
                "Ec2SimpleInputParamsStrings",
                Query::with_version("SimpleInputParams", V)
                    .set("Foo", "val1")
                    .set("Bar", "val2"),
            ),
            (
                "Ec2SimpleInputParamsStringAndBooleanTrue",
                Query::with_version("SimpleInputParams", V)
                    .set("Foo", "val1")
                    .set("Baz", true),
            ),
            (
                "Ec2SimpleInputParamsStringsAndBooleanFalse",
                Query::with_version("SimpleInputParams", V).set("Baz", false),
            ),
            (
                "Ec2SimpleInputParamsInteger",
                Query::with_version("SimpleInputParams", V).set("Bam", 10),
            ),
            (
                "Ec2SimpleInputParamsFloat",
                Query::with_version("SimpleInputParams", V).set("Boo", 10.8),
            ),
            (
                // Blobs go base64, and `=` is escaped.
                "Ec2SimpleInputParamsBlob",
                Query::with_version("SimpleInputParams", V)
                    .set("Qux", data_encoding::BASE64.encode(b"value")),
            ),
            (
                "Ec2NestedStructures",
                Query::with_version("NestedStructures", V)
                    .set("Nested.StringArg", "foo")
                    .set("Nested.OtherArg", true)
                    .set("Nested.RecursiveArg.StringArg", "baz"),
            ),
            (
                "Ec2Lists",
                Query::with_version("QueryLists", V)
                    .list("ListArg", ["foo", "bar", "baz"])
                    .each("ComplexListArg", ["hello", "hola"], |hi| {
                        vec![("Hi".into(), hi.into())]
                    }),
            ),
            (
                "Ec2EmptyQueryLists",
                Query::with_version("QueryLists", V).list("ListArg", Vec::<String>::new()),
            ),
            (
                "Ec2ListNestedStructWithList",
                Query::with_version("QueryLists", V).list("NestedWithList.ListArg", ["A", "B"]),
            ),
            (
                // Timestamps in ISO 8601, `:` escaped.
                "Ec2TimestampsInput",
                Query::with_version("QueryTimestamps", V)
                    .set(
                        "NormalFormat",
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_422_172_800),
                        ),
                    )
                    .set("EpochMember", 1_422_172_800)
                    .set("EpochTarget", 1_422_172_800),
            ),
            (
                "Ec2QueryEmptyInputAndEmptyOutput",
                Query::with_version("EmptyInputAndEmptyOutput", V),
            ),
        ];
        for (id, q) in cases {
            assert_eq!(q.body(), expected(id), "{id}");
        }
    }

    #[test]
    fn filters_and_optional_values_should_flatten() {
        let q = Query::new("DescribeImages")
            .list("Owner", ["136693071363"])
            .filters(&[
                ("name", &["debian-12-amd64-*"]),
                ("architecture", &["x86_64", "arm64"]),
            ])
            .set_opt("NextToken", None::<&str>)
            .set_opt("MaxResults", Some(5));
        assert_eq!(q.action(), "DescribeImages");
        assert_eq!(
            q.body(),
            "Action=DescribeImages&Version=2016-11-15&Owner.1=136693071363\
             &Filter.1.Name=name&Filter.1.Value.1=debian-12-amd64-%2A\
             &Filter.2.Name=architecture&Filter.2.Value.1=x86_64&Filter.2.Value.2=arm64\
             &MaxResults=5"
        );
    }
}
