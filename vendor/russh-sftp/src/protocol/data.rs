use bytes::Bytes;

use super::{impl_packet_for, impl_request_id, Packet, RequestId};

/// Implementation for `SSH_FXP_DATA`
#[derive(Debug, Serialize, Deserialize)]
pub struct Data {
    pub id: u32,
    /// spuff patch: a slice of the received packet, not a copy of it
    /// (`Packet::try_from` takes it out without serde).
    #[serde(with = "as_bytes")]
    pub data: Bytes,
}

/// spuff patch: `Bytes` through serde as a byte string, like `serde_bytes`.
mod as_bytes {
    use bytes::Bytes;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(data)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let v: Vec<u8> = serde_bytes::deserialize(d)?;
        Ok(Bytes::from(v))
    }
}

impl_request_id!(Data);
impl_packet_for!(Data);
