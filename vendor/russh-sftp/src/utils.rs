use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Error;

pub(crate) fn unix(time: SystemTime) -> u32 {
    DateTime::<Utc>::from(time).timestamp() as u32
}

pub(crate) async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_length: u32,
) -> Result<Bytes, Error> {
    let length = stream.read_u32().await?;
    if length > max_length {
        return Err(Error::BadMessage("packet length limit exceeded".to_owned()));
    }

    // spuff patch: read into uninitialised capacity, not a zeroed buffer:
    // zeroing was a second pass over every byte of a download.
    let length = length as usize;
    let mut buf = Vec::with_capacity(length);
    let mut packet = (&mut *stream).take(length as u64);
    while buf.len() < length {
        if packet.read_buf(&mut buf).await? == 0 {
            return Err(Error::UnexpectedEof);
        }
    }

    Ok(Bytes::from(buf))
}
