//! FastCGI record handling, fed arbitrary bytes as the web server's side of a connection,
//! the way salt-fcgi's FastCGI front end reads one: `RecordReader::next` in a loop, each
//! record pushed into an `Assembly`, each whole request turned into CGI variables.
//!
//! Checks beyond "no panic": the records handed out are the input's own bytes, one after
//! the other from its start (content where the header says); reading stops only at the
//! input's end, or at a record that `check_record` refuses or that the input cuts short;
//! a request's body is never kept past one byte over `max_body_bytes`, however much was
//! sent.
#![no_main]

use fuzz_common::{quietly, runtime};
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::fastcgi::{Assembly, RecordReader, Step, check_record};

const MAX_BODY: usize = 64;

fuzz_target!(|data: &[u8]| {
    quietly(|| runtime().block_on(run(data)));
});

async fn run(data: &[u8]) {
    let mut reader = RecordReader::new(data);
    let mut assembly = Assembly::new(MAX_BODY, 16);
    let mut offset = 0;
    let refused = loop {
        let (header, content) = match reader.next().await {
            Ok(Some(record)) => record,
            Ok(None) => break false,
            Err(_) => break true,
        };
        let start = offset + 8;
        assert_eq!(
            content,
            &data[start..start + usize::from(header.content_len)],
            "a record's content is the input's bytes"
        );
        offset += header.total_len();
        match assembly.push(header, content) {
            Step::Request(request) => {
                let vars = request.vars();
                assert!(vars.iter().all(|(k, v)| k.len() + v.len() <= data.len()));
                let api = request.into_api_request(MAX_BODY);
                if let Ok(body) = &api.body {
                    assert!(body.len() <= MAX_BODY, "body over max_body_bytes");
                }
            }
            Step::Close(_) => return,
            Step::Continue | Step::Reply(_) => {}
        }
    };
    let rest = &data[offset..];
    if refused {
        // The record after the ones handed out is malformed or cut short, never a good one.
        assert!(
            !rest.is_empty() && !matches!(check_record(rest), Ok(Some(_))),
            "refused a good record"
        );
    } else {
        assert!(rest.is_empty(), "every record was handed out");
    }
}
