//! Just enough of Redis's protocol (RESP2) for `/logout` to remove a token from a Redis token
//! store, as rest_cherrypy's logout does through Salt's own token module: the master has no
//! request for it, and its `auth.del_token` runner removes only a `<token_dir>/<token>` file.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::settings::{RedisLayout, RedisTokens};

/// Longest wait for the connection and for all the replies together.
const REDIS_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest reply line read (an integer, a status or an error).
const REPLY_MAX: u64 = 4096;

/// Removes `token` from the store; whether it was there.
pub(crate) async fn remove_token(store: &RedisTokens, token: &str) -> io::Result<bool> {
    tokio::time::timeout(REDIS_TIMEOUT, remove(store, token))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer from Redis"))?
}

/// [`remove_token`] without its deadline: what Salt's `rm_token` does, one command at a time.
async fn remove(store: &RedisTokens, token: &str) -> io::Result<bool> {
    let mut conn = BufReader::new(TcpStream::connect(&store.address).await?);
    if let Some(password) = &store.password {
        command(&mut conn, &["AUTH", password]).await?;
    }
    if store.db != "0" {
        command(&mut conn, &["SELECT", &store.db]).await?;
    }
    match &store.layout {
        RedisLayout::KeyPerToken => Ok(command(&mut conn, &["DEL", token]).await? > 0),
        RedisLayout::CacheBank {
            keys,
            timestamps,
            banks,
        } => {
            // salt/cache/redis_cache.py's _flush_key: the bank leaves the set of banks with
            // its last key.
            let removed = command(&mut conn, &["HDEL", keys, token]).await? > 0;
            command(&mut conn, &["HDEL", timestamps, token]).await?;
            if command(&mut conn, &["EXISTS", keys]).await? == 0 {
                command(&mut conn, &["ZREM", banks, keys]).await?;
            }
            Ok(removed)
        }
    }
}

/// Sends one command and reads its reply: an integer, or 0 for a status (`+OK`); an error
/// reply (`-ERR …`, `-MOVED …`) or anything else is an error.
async fn command(conn: &mut BufReader<TcpStream>, args: &[&str]) -> io::Result<i64> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    conn.get_mut().write_all(&request).await?;
    let mut line = String::new();
    // The replies here are one short line; a longer one is not Redis.
    if (&mut *conn).take(REPLY_MAX).read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "Redis closed the connection",
        ));
    }
    let line = line.trim_end();
    let bad = || io::Error::other(format!("Redis answered {} with {line:?}", args[0]));
    match line.split_at_checked(1) {
        Some((":", n)) => n.parse().map_err(|_| bad()),
        Some(("+", _)) => Ok(0),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake Redis that answers each command in turn with the next of `replies`, and hands
    /// back what it was sent.
    async fn fake(replies: &'static [&'static str]) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            for reply in replies {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.expect("read");
                seen.extend_from_slice(&buf[..n]);
                s.write_all(reply.as_bytes()).await.expect("write");
            }
            String::from_utf8(seen).expect("utf8")
        });
        (address, task)
    }

    fn store(address: String, layout: RedisLayout) -> RedisTokens {
        RedisTokens {
            address,
            password: None,
            db: "0".into(),
            layout,
        }
    }

    #[tokio::test]
    async fn a_key_per_token_is_deleted() {
        let (address, seen) = fake(&[":1\r\n"]).await;
        let s = store(address, RedisLayout::KeyPerToken);
        assert!(remove_token(&s, "ab12").await.expect("del"));
        assert_eq!(
            seen.await.expect("join"),
            "*2\r\n$3\r\nDEL\r\n$4\r\nab12\r\n"
        );
        let (address, _) = fake(&[":0\r\n"]).await;
        let s = store(address, RedisLayout::KeyPerToken);
        assert!(!remove_token(&s, "ab12").await.expect("del"));
    }

    #[tokio::test]
    async fn a_cache_bank_loses_the_field_and_then_itself() {
        let (address, seen) = fake(&["+OK\r\n", ":1\r\n", ":1\r\n", ":0\r\n", ":1\r\n"]).await;
        let mut s = store(
            address,
            RedisLayout::CacheBank {
                keys: "$KEYS_tokens/".into(),
                timestamps: "$TSTAMP_tokens/".into(),
                banks: "$BANKS_".into(),
            },
        );
        s.password = Some("pw".into());
        assert!(remove_token(&s, "ab").await.expect("hdel"));
        let seen = seen.await.expect("join");
        let commands: Vec<&str> = seen
            .split("*")
            .filter(|c| !c.is_empty())
            .map(|c| c.split("\r\n").nth(2).unwrap_or_default())
            .collect();
        assert_eq!(
            commands,
            ["AUTH", "HDEL", "HDEL", "EXISTS", "ZREM"],
            "{seen}"
        );
    }

    #[tokio::test]
    async fn error_replies_are_errors() {
        let (address, _) = fake(&["-MOVED 3999 127.0.0.1:6381\r\n"]).await;
        let s = store(address, RedisLayout::KeyPerToken);
        let e = remove_token(&s, "ab").await.expect_err("moved");
        assert!(e.to_string().contains("MOVED"), "{e}");
        // Not Redis: a reply line without end is cut at REPLY_MAX and refused.
        let endless: &'static str = Box::leak(format!(":{}", "1".repeat(5000)).into_boxed_str());
        let (address, _) = fake(Box::leak(vec![endless].into_boxed_slice())).await;
        let s = store(address, RedisLayout::KeyPerToken);
        assert!(remove_token(&s, "ab").await.is_err());
    }
}
