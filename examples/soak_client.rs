//! Load client for `scripts/soak`: N keep-alive HTTP/1.1 connections sending a fixed mix
//! of API requests until a total count (or a time limit) is reached; prints a status tally.
//!
//! `soak_client ADDR TOTAL CONNECTIONS SECONDS USER PASSWORD`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// (share per 1000, method, content type, body); `{AUTH}` is replaced by eauth credentials.
const MIX: [(u32, &str, &str, &str); 8] = [
    (500, "POST", "application/json", "[]"),
    (100, "POST", "text/plain", "[]"),
    (100, "GET", "", ""),
    (
        100,
        "POST",
        "application/json",
        r#"[{"client":"local","tgt":"*","fun":"test.ping"}]"#,
    ),
    (
        100,
        "POST",
        "application/json",
        r#"[{"client":"nope",{AUTH}}]"#,
    ),
    (
        90,
        "POST",
        "application/json",
        r#"[{"client":"wheel","fun":"key.list_all",{AUTH}}]"#,
    ),
    (
        6,
        "POST",
        "application/json",
        r#"[{"client":"local_async","tgt":"*","fun":"test.ping",{AUTH}}]"#,
    ),
    (
        4,
        "POST",
        "application/json",
        r#"[{"client":"local","tgt":"*","fun":"test.ping",{AUTH}}]"#,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: soak_client ADDR TOTAL CONNECTIONS SECONDS USER PASSWORD");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let total: u64 = args[2].parse().expect("TOTAL");
    let conns: usize = args[3].parse().expect("CONNECTIONS");
    let deadline = Instant::now() + Duration::from_secs(args[4].parse().expect("SECONDS"));
    let auth = format!(
        r#""eauth":"file","username":"{}","password":"{}""#,
        args[5], args[6]
    );
    let slots: Arc<Vec<(String, String, String)>> = Arc::new(
        MIX.iter()
            .flat_map(|(n, m, ct, body)| {
                let item = (m.to_string(), ct.to_string(), body.replace("{AUTH}", &auth));
                std::iter::repeat_n(item, *n as usize)
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, slots, next, tally) = (
                addr.clone(),
                Arc::clone(&slots),
                Arc::clone(&next),
                Arc::clone(&tally),
            );
            std::thread::spawn(move || worker(&addr, &slots, &next, total, deadline, &tally))
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let tally = tally.lock().expect("tally");
    let line: Vec<String> = tally.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("STATUS {}", line.join(" "));
}

fn worker(
    addr: &str,
    slots: &[(String, String, String)],
    next: &AtomicU64,
    total: u64,
    deadline: Instant,
    tally: &Mutex<BTreeMap<String, u64>>,
) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total || Instant::now() > deadline {
            return;
        }
        let (method, ct, body) = &slots[(n.wrapping_mul(7919) % slots.len() as u64) as usize];
        let outcome = (|| -> std::io::Result<u16> {
            if conn.is_none() {
                let s = TcpStream::connect(addr)?;
                s.set_read_timeout(Some(Duration::from_secs(120)))?;
                conn = Some(BufReader::new(s));
            }
            let c = conn.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
            let mut head = format!(
                "{method} / HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n",
                body.len()
            );
            if !ct.is_empty() {
                head.push_str(&format!("Content-Type: {ct}\r\n"));
            }
            head.push_str("\r\n");
            c.get_mut().write_all(head.as_bytes())?;
            c.get_mut().write_all(body.as_bytes())?;
            let (status, close) = read_response(c)?;
            if close {
                // nginx ends a keep-alive connection after keepalive_requests (1000).
                conn = None;
            }
            Ok(status)
        })();
        let key = match outcome {
            Ok(status) => status.to_string(),
            Err(e) => {
                conn = None;
                format!("error:{:?}", e.kind())
            }
        };
        *tally.lock().expect("tally").entry(key).or_default() += 1;
    }
}

/// Reads one response with a Content-Length body; returns its status and whether the
/// server closes the connection after it.
fn read_response(c: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    c.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if c.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v
                    .trim()
                    .parse()
                    .map_err(|_| std::io::ErrorKind::InvalidData)?;
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    let mut body = vec![0u8; length];
    c.read_exact(&mut body)?;
    Ok((status, close))
}
