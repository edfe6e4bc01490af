//! Firing an event onto the master bus (rest_cherrypy's `/hook`), the way Salt's own
//! `fire_event` does: one frame into the master's event puller,
//! `<sock_dir>/master_event_pull.ipc` (or TCP `tcp_master_pull_port` with `ipc_mode: tcp`).
//!
//! The frame is a u32 big-endian length, then the msgpack map `{"head": {}, "body": <bin>}`
//! whose body is `tag + "\n\n" + msgpack(data)`. The length prefix is what the pullers of
//! 3006.26+, 3007.15+ and 3008.2+ read; older masters are not supported here.

use std::time::Duration;

use rmpv::Value as Msgpack;
use serde_json::Value as Json;
use tokio::io::AsyncWriteExt;

use super::bus_socket::BusSocket;
use super::error::{SaltError, SaltResult};
use super::payload;
use crate::settings::Settings;

/// Longest time connecting to the puller and writing one event may take.
const FIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The frame Salt's event pusher writes for `tag` and `data`.
pub fn frame(tag: &str, data: &Json) -> Vec<u8> {
    let mut body = Vec::with_capacity(tag.len() + 64);
    body.extend_from_slice(tag.as_bytes());
    body.extend_from_slice(b"\n\n");
    body.extend_from_slice(&payload::encode(data));
    let map = Msgpack::Map(vec![
        (Msgpack::from("head"), Msgpack::Map(Vec::new())),
        (Msgpack::from("body"), Msgpack::Binary(body)),
    ]);
    let mut packed = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut packed, &map);
    let mut framed = u32::try_from(packed.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&packed);
    framed
}

/// Fires one event; `_stamp` is added as Salt's `fire_event` does.
pub(crate) async fn fire(settings: &Settings, tag: &str, mut data: Json) -> SaltResult<()> {
    if let Json::Object(map) = &mut data {
        map.insert("_stamp".into(), Json::from(super::clock::utc_stamp()));
    }
    let puller = BusSocket::puller(settings);
    if matches!(puller, BusSocket::Absent) {
        return Err(BusSocket::absent_error());
    }
    let frame = frame(tag, &data);
    let sent = tokio::time::timeout(FIRE_TIMEOUT, async {
        let mut s = puller.connect().await?;
        s.write_all(&frame).await?;
        s.shutdown().await
    })
    .await;
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(SaltError::EventBus(format!(
                "cannot fire an event: permission denied on the master's event puller ({e}); run salt-fcgi as the master's user or group"
            )))
        }
        Ok(Err(e)) => Err(SaltError::NotRunning(format!(
            "Salt Master is not available: cannot reach its event puller ({e})."
        ))),
        Err(_) => Err(SaltError::Timeout(
            "the master's event puller did not take the event in time".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frame_is_length_prefixed_head_and_body() {
        let f = frame("salt/netapi/hook/x", &json!({"a": 1}));
        let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        let map = rmpv::decode::read_value(&mut &f[4..]).expect("msgpack");
        let body = map["body"].as_slice().expect("bin body");
        let (tag, data) =
            body.split_at(body.windows(2).position(|w| w == b"\n\n").expect("TAGEND"));
        assert_eq!(tag, b"salt/netapi/hook/x");
        assert_eq!(payload::decode(&data[2..]).expect("data"), json!({"a": 1}));
    }
}
