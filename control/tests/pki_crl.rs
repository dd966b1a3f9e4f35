//! Revocation lists: parsing, signature checks, the poll schedule, and fetching from a file and
//! from a loopback HTTP server started by each test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod pki_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use pki_support::*;
use svr_control::pki::{
    CrlError, CrlPoller, CrlSource, CrlUpdate, RevocationList, RevocationSet, ValidationError,
    validate_peer_at,
};

/// A one-connection-per-response HTTP server on 127.0.0.1 and an ephemeral port. Each
/// response in `responses` is sent raw to one client, then the connection is closed.
struct Server {
    port: u16,
    handle: Option<JoinHandle<Vec<String>>>,
}

impl Server {
    fn start(responses: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for response in responses {
                let (mut stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut chunk).unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                requests.push(String::from_utf8_lossy(&buf).into_owned());
                if response == b"HANG" {
                    std::thread::sleep(Duration::from_millis(1500));
                    continue;
                }
                let _ = stream.write_all(&response);
            }
            requests
        });
        Server { port, handle: Some(handle) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(mut self) -> Vec<String> {
        self.handle.take().unwrap().join().unwrap()
    }
}

fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn crl_source_parse() {
    assert_eq!(
        CrlSource::parse("http://crl.example:8080/ca.crl").unwrap(),
        CrlSource::Http { host: "crl.example".into(), port: 8080, path: "/ca.crl".into() }
    );
    assert_eq!(
        CrlSource::parse("http://crl.example").unwrap(),
        CrlSource::Http { host: "crl.example".into(), port: 80, path: "/".into() }
    );
    let v6 = CrlSource::parse("http://[::1]:8080/ca.crl").unwrap();
    assert_eq!(v6, CrlSource::Http { host: "::1".into(), port: 8080, path: "/ca.crl".into() });
    assert_eq!(v6.display(), "http://[::1]:8080/ca.crl");
    assert_eq!(
        CrlSource::parse("http://[::1]/").unwrap(),
        CrlSource::Http { host: "::1".into(), port: 80, path: "/".into() }
    );
    assert!(matches!(CrlSource::parse("http://[::1/x"), Err(CrlError::InvalidSource { .. })));
    assert!(matches!(CrlSource::parse("http:///x"), Err(CrlError::InvalidSource { .. })));
    assert_eq!(
        CrlSource::parse("/etc/svrd/ca.crl").unwrap(),
        CrlSource::File("/etc/svrd/ca.crl".into())
    );
    assert_eq!(CrlSource::parse("file:///x.crl").unwrap(), CrlSource::File("/x.crl".into()));
    assert!(matches!(CrlSource::parse("https://x/y"), Err(CrlError::InvalidSource { .. })));
    assert!(matches!(CrlSource::parse("ca.crl"), Err(CrlError::InvalidSource { .. })));
    assert!(matches!(CrlSource::parse("http://h:port/"), Err(CrlError::InvalidSource { .. })));
}

#[test]
fn crl_parse_der_and_pem() {
    let ca = root("ca");
    let der = ca.crl(&[1, 2, 3]);
    let list = RevocationList::parse("a", &der).unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.issuer().contains("CN=ca"));
    assert_eq!(list.updates(), (NOW - DAY, Some(NOW + 7 * DAY)));
    let pem = pem_encode("X509 CRL", &der);
    assert_eq!(RevocationList::parse("b", pem.as_bytes()).unwrap().len(), 3);
    assert!(matches!(RevocationList::parse("c", b"junk"), Err(CrlError::Malformed { .. })));
    let cert_pem = ca.pem();
    assert!(matches!(
        RevocationList::parse("d", cert_pem.as_bytes()),
        Err(CrlError::Malformed { .. })
    ));
}

#[test]
fn crl_bad_signature_rejected_keeps_old() {
    let ca = root("ca");
    let t = trust(&[&ca]);
    let mut set = RevocationSet::new();
    set.insert(RevocationList::parse("ca.crl", &ca.crl(&[1])).unwrap(), &t).unwrap();
    let generation = set.generation();

    let mut forged = ca.crl(&[1, 2]);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let err = set.insert(RevocationList::parse("ca.crl", &forged).unwrap(), &t).unwrap_err();
    assert!(matches!(err, CrlError::SignatureInvalid { .. }), "{err}");
    assert_eq!(set.generation(), generation);
    assert_eq!(set.lists().next().unwrap().len(), 1);
}

#[test]
fn poller_due_and_schedule() {
    let ca = root("ca");
    let t = trust(&[&ca]);
    let mut set = RevocationSet::new();
    let hour = Duration::from_secs(3600);
    let mut poller =
        CrlPoller::new(CrlSource::parse("/x.crl").unwrap(), 24 * hour, Duration::from_secs(60));
    let now = system_time(NOW);
    assert!(poller.due(now));

    let crl = ca.crl(&[9]);
    let update = poller.apply(now, &crl, &mut set, &t).unwrap();
    assert_eq!(update, CrlUpdate::Updated { entries: 1, generation: 1 });
    assert!(!poller.due(now + 24 * hour - Duration::from_secs(1)));
    assert!(poller.due(now + 24 * hour));

    // Same bytes again change nothing, so caches keep their results.
    let later = now + 24 * hour;
    assert_eq!(poller.apply(later, &crl, &mut set, &t).unwrap(), CrlUpdate::Unchanged);
    assert_eq!(set.generation(), 1);

    // Bad bytes schedule a retry after the retry delay.
    assert!(poller.apply(later, b"junk", &mut set, &t).is_err());
    assert_eq!(poller.failures(), 1);
    assert!(!poller.due(later + Duration::from_secs(59)));
    assert!(poller.due(later + Duration::from_secs(60)));

    let changed = ca.crl(&[9, 10]);
    assert_eq!(
        poller.apply(later, &changed, &mut set, &t).unwrap(),
        CrlUpdate::Updated { entries: 2, generation: 2 }
    );
    assert_eq!(poller.failures(), 0);
}

#[test]
fn file_source_fetch_and_revoke() {
    let dir = TempDir::new("crl");
    let ca = root("ca");
    let ee = issue(ee_params("r2", 77), Key::p256(), &ca);
    let path = dir.path().join("ca.crl");
    std::fs::write(&path, ca.crl(&[77])).unwrap();
    let source = CrlSource::File(path.clone());
    let bytes = source.fetch(TIMEOUT, 1 << 20).unwrap();

    let t = trust(&[&ca]);
    let mut set = RevocationSet::new();
    let mut poller =
        CrlPoller::new(source.clone(), Duration::from_secs(3600), Duration::from_secs(60));
    poller.apply(system_time(NOW), &bytes, &mut set, &t).unwrap();
    let err = validate_peer_at(std::slice::from_ref(&ee.der), "r2", NOW, &t, &set).unwrap_err();
    assert!(matches!(err, ValidationError::Revoked { .. }), "{err}");

    assert!(matches!(source.fetch(TIMEOUT, 10), Err(CrlError::TooLarge { max: 10, .. })));
    let missing = CrlSource::File(dir.path().join("absent.crl"));
    assert!(matches!(missing.fetch(TIMEOUT, 1 << 20), Err(CrlError::Io { .. })));
}

#[test]
fn http_fetch_content_length() {
    let ca = root("ca");
    let crl = ca.crl(&[5]);
    let server = Server::start(vec![ok_response(&crl)]);
    let source = CrlSource::parse(&server.url("/pki/ca.crl")).unwrap();
    let body = source.fetch(TIMEOUT, 1 << 20).unwrap();
    assert_eq!(body, crl);
    let requests = server.requests();
    assert!(requests[0].starts_with("GET /pki/ca.crl HTTP/1.1\r\n"), "{}", requests[0]);
    assert!(requests[0].contains("Host: 127.0.0.1\r\n"), "{}", requests[0]);
}

#[test]
fn http_fetch_chunked() {
    let ca = root("ca");
    let crl = ca.crl(&[5, 6]);
    let (a, b) = crl.split_at(crl.len() / 2);
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in [a, b] {
        response.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
        response.extend_from_slice(part);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let server = Server::start(vec![response]);
    let body = CrlSource::parse(&server.url("/c")).unwrap().fetch(TIMEOUT, 1 << 20).unwrap();
    assert_eq!(body, crl);
    assert_eq!(RevocationList::parse("c", &body).unwrap().len(), 2);
    server.requests();
}

#[test]
fn http_fetch_not_found() {
    let server =
        Server::start(vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()]);
    let err =
        CrlSource::parse(&server.url("/missing")).unwrap().fetch(TIMEOUT, 1 << 20).unwrap_err();
    assert!(
        matches!(err, CrlError::HttpStatus { ref status, .. } if status.contains("404")),
        "{err}"
    );
    server.requests();
}

#[test]
fn http_fetch_too_large() {
    let big = vec![0x30u8; 4096];
    let server = Server::start(vec![ok_response(&big)]);
    let err = CrlSource::parse(&server.url("/big")).unwrap().fetch(TIMEOUT, 1000).unwrap_err();
    assert!(matches!(err, CrlError::TooLarge { max: 1000, .. }), "{err}");
    server.requests();
}

#[test]
fn http_fetch_truncated_body() {
    let server =
        Server::start(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec()]);
    let err = CrlSource::parse(&server.url("/t")).unwrap().fetch(TIMEOUT, 1 << 20).unwrap_err();
    assert!(matches!(err, CrlError::HttpMalformed { .. }), "{err}");
    server.requests();
}

#[test]
fn http_fetch_times_out() {
    let server = Server::start(vec![b"HANG".to_vec()]);
    let started = std::time::Instant::now();
    let err = CrlSource::parse(&server.url("/slow"))
        .unwrap()
        .fetch(Duration::from_millis(300), 1 << 20)
        .unwrap_err();
    assert!(matches!(err, CrlError::TimedOut { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1400), "{:?}", started.elapsed());
    server.requests();
}

#[test]
fn http_fetch_connection_refused() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = CrlSource::parse(&format!("http://127.0.0.1:{port}/x"))
        .unwrap()
        .fetch(TIMEOUT, 1 << 20)
        .unwrap_err();
    assert!(matches!(err, CrlError::Io { .. }), "{err}");
}

#[test]
fn http_poll_revokes_then_reread_on_change() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 31), Key::p256(), &ca);
    let t = trust(&[&ca]);
    let server = Server::start(vec![ok_response(&ca.crl(&[1])), ok_response(&ca.crl(&[1, 31]))]);
    let source = CrlSource::parse(&server.url("/ca.crl")).unwrap();
    let mut poller =
        CrlPoller::new(source.clone(), Duration::from_secs(3600), Duration::from_secs(60));
    let mut set = RevocationSet::new();

    let now = system_time(NOW);
    let bytes = poller.source().fetch(TIMEOUT, 1 << 20).unwrap();
    poller.apply(now, &bytes, &mut set, &t).unwrap();
    assert!(validate_peer_at(std::slice::from_ref(&ee.der), "r2", NOW, &t, &set).is_ok());

    let next = now + Duration::from_secs(3600);
    assert!(poller.due(next));
    let bytes = poller.source().fetch(TIMEOUT, 1 << 20).unwrap();
    assert!(matches!(
        poller.apply(next, &bytes, &mut set, &t).unwrap(),
        CrlUpdate::Updated { entries: 2, .. }
    ));
    let err =
        validate_peer_at(std::slice::from_ref(&ee.der), "r2", NOW + 3600, &t, &set).unwrap_err();
    assert!(matches!(err, ValidationError::Revoked { .. }), "{err}");
    assert_eq!(server.requests().len(), 2);
}
