//! A minimal HTTP/1.1 client for fetching CRLs over plain HTTP: one GET per connection, the
//! response read to the end under a size cap and a deadline, no TLS and no redirects.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::error::CrlError;

/// Cap on the HTTP status line and headers.
const MAX_HTTP_HEADER_BYTES: usize = 16 * 1024;

/// Writes an IPv6 address in brackets, as URLs and the Host header need.
pub(crate) fn host_text(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

/// Fetches `path` with a minimal HTTP/1.1 GET and `Connection: close`. The whole response is
/// read up to the caps, and both `Content-Length` and chunked bodies are decoded.
pub(crate) fn http_get(
    source: &str,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Vec<u8>, CrlError> {
    let deadline = Instant::now() + timeout;
    let io = |error| CrlError::Io { source: source.to_owned(), error };
    let timed_out = || CrlError::TimedOut { source: source.to_owned() };

    // NOTE: name resolution goes through the system resolver and is not bounded by `timeout`;
    // configure CRL URLs with an address or a name the local resolver answers quickly.
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(io)?.collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        return Err(match last_error {
            Some(e) if e.kind() == std::io::ErrorKind::TimedOut => timed_out(),
            Some(e) => io(e),
            None => io(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")),
        });
    };

    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: svrd\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        host_text(host)
    );
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;

    let cap = max_bytes.saturating_add(MAX_HTTP_HEADER_BYTES);
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(remaining)).map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.len() > cap {
                    return Err(CrlError::TooLarge { source: source.to_owned(), max: max_bytes });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    parse_http_response(source, &response, max_bytes)
}

fn parse_http_response(
    source: &str,
    response: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, CrlError> {
    let malformed = |detail: &str| CrlError::HttpMalformed {
        source: source.to_owned(),
        detail: detail.to_owned(),
    };
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(malformed("no end of headers"));
    };
    if end > MAX_HTTP_HEADER_BYTES {
        return Err(malformed("headers too long"));
    }
    let head =
        std::str::from_utf8(&response[..end]).map_err(|_| malformed("headers are not UTF-8"))?;
    let body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed("status line is not HTTP/1.x"));
    }
    if status != "200" {
        return Err(CrlError::HttpStatus {
            source: source.to_owned(),
            status: status_line.to_owned(),
        });
    }

    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed("header line without ':'"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length =
                Some(value.parse::<usize>().map_err(|_| malformed("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
            if !chunked {
                return Err(malformed("unsupported Transfer-Encoding"));
            }
        }
    }

    let too_large = || CrlError::TooLarge { source: source.to_owned(), max: max_bytes };
    if chunked {
        return decode_chunked(body, max_bytes).map_err(|e| match e {
            ChunkError::TooLarge => too_large(),
            ChunkError::Malformed(d) => malformed(d),
        });
    }
    match content_length {
        Some(len) if len > max_bytes => Err(too_large()),
        Some(len) if body.len() < len => Err(malformed("body shorter than Content-Length")),
        Some(len) => Ok(body[..len].to_vec()),
        None if body.len() > max_bytes => Err(too_large()),
        None => Ok(body.to_vec()),
    }
}

enum ChunkError {
    TooLarge,
    Malformed(&'static str),
}

/// RFC 9112 section 7.1: chunk-size in hex, optional extensions, CRLF, data, CRLF; a zero
/// chunk ends the body (trailers are ignored).
fn decode_chunked(mut body: &[u8], max_bytes: usize) -> Result<Vec<u8>, ChunkError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Err(ChunkError::Malformed("chunk size line without CRLF"));
        };
        let line =
            std::str::from_utf8(&body[..eol]).map_err(|_| ChunkError::Malformed("chunk size"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ChunkError::Malformed("chunk size"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if out.len().saturating_add(size) > max_bytes {
            return Err(ChunkError::TooLarge);
        }
        if body.len() < size + 2 || &body[size..size + 2] != b"\r\n" {
            return Err(ChunkError::Malformed("truncated chunk"));
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::{CrlError, parse_http_response};

    fn parse(response: &[u8]) -> Result<Vec<u8>, CrlError> {
        parse_http_response("test", response, 100)
    }

    #[test]
    fn response_without_length_reads_to_end() {
        assert_eq!(parse(b"HTTP/1.0 200 OK\r\n\r\nabc").unwrap(), b"abc");
    }

    #[test]
    fn response_not_http_rejected() {
        assert!(matches!(parse(b"SSH-2.0-x\r\n\r\n"), Err(CrlError::HttpMalformed { .. })));
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\n"), Err(CrlError::HttpMalformed { .. })));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nbad\r\n\r\n"),
            Err(CrlError::HttpMalformed { .. })
        ));
    }

    #[test]
    fn response_bad_chunks_rejected() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for body in [&b"zz\r\nab\r\n0\r\n\r\n"[..], b"5\r\nab\r\n0\r\n\r\n", b"2\r\nab"] {
            let mut r = head.clone();
            r.extend_from_slice(body);
            assert!(matches!(parse(&r), Err(CrlError::HttpMalformed { .. })), "{body:?}");
        }
        let mut big = head.clone();
        big.extend_from_slice(b"65\r\n");
        big.extend_from_slice(&[b'x'; 101]);
        big.extend_from_slice(b"\r\n0\r\n\r\n");
        assert!(matches!(parse(&big), Err(CrlError::TooLarge { max: 100, .. })));
    }

    #[test]
    fn response_other_transfer_encoding_rejected() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx";
        assert!(matches!(parse(r), Err(CrlError::HttpMalformed { .. })));
    }
}
