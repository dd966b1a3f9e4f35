//! The Unix socket: a listener thread in `svrd` that reads each request on a thread of its
//! own and hands it to the control thread, and the client call `svrctl` makes.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Command, Reply};

/// Largest request or reply accepted, in bytes. A reply with every peer's certificates is
/// far smaller; the cap bounds what a misbehaving client can make the daemon buffer.
pub const MAX_MESSAGE_LEN: usize = 4 << 20;

/// How long either side waits for the whole of the other side's message.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once. A further client gets an error reply at once rather than
/// waiting behind clients that are slow to send.
const MAX_CLIENTS: usize = 16;

/// Longest socket path the kernel accepts: `sun_path` is 108 bytes with the final NUL.
const MAX_PATH_LEN: usize = 107;

/// A request waiting for the control thread, with the channel its reply goes back on.
pub type Pending = (Command, mpsc::SyncSender<Reply>);

/// The daemon side: a thread accepting connections on the socket.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    /// Device and inode of the socket this process bound, so that exit removes only that
    /// socket and not one a later process put at the same path.
    identity: (u64, u64),
    /// Set on drop: the listener thread ends at the next connection it accepts.
    stopping: Arc<AtomicBool>,
    listener_thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Binds the socket, readable and writable by the owner and group only, and starts the
    /// listener thread. Requests arrive on the returned receiver; the control thread
    /// answers each on its reply channel.
    ///
    /// A socket left at `path` by a process that has exited is replaced. Anything else at
    /// `path` is an error: a file that is not a socket, or a socket another process still
    /// listens on.
    pub fn start(path: &Path) -> Result<(Server, mpsc::Receiver<Pending>), MgmtError> {
        remove_stale_socket(path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| MgmtError::io(parent, e))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| MgmtError::io(path, e))?;
        let metadata = std::fs::symlink_metadata(path).map_err(|e| MgmtError::io(path, e))?;
        let identity = (metadata.dev(), metadata.ino());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| MgmtError::io(path, e))?;

        let (sender, receiver) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let thread_stopping = Arc::clone(&stopping);
        let listener_thread = thread::Builder::new()
            .name("svrd-mgmt".into())
            .spawn(move || accept_loop(&listener, &sender, &thread_stopping))
            .map_err(|e| MgmtError::io(path, e))?;
        let server = Server {
            path: path.to_path_buf(),
            identity,
            stopping,
            listener_thread: Some(listener_thread),
        };
        Ok((server, receiver))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let Ok(metadata) = std::fs::symlink_metadata(&self.path) else {
            return;
        };
        if (metadata.dev(), metadata.ino()) == self.identity {
            // The listener thread waits in accept. A connection wakes it, so it reads the flag
            // and ends. This matters where the daemon runs inside a longer-lived process.
            if UnixStream::connect(&self.path).is_ok()
                && let Some(thread) = self.listener_thread.take()
            {
                let _ = thread.join();
            }
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes a socket at `path` that no process listens on, and rejects anything else there.
fn remove_stale_socket(path: &Path) -> Result<(), MgmtError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(MgmtError::io(path, error)),
    };
    if !metadata.file_type().is_socket() {
        return Err(MgmtError::NotSocket(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(MgmtError::InUse(path.to_path_buf())),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(|e| MgmtError::io(path, e))
        }
        Err(error) => Err(MgmtError::io(path, error)),
    }
}

fn accept_loop(listener: &UnixListener, sender: &mpsc::Sender<Pending>, stopping: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a management connection");
                // A persistent accept error (out of descriptors) would otherwise spin.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            active.fetch_sub(1, Ordering::AcqRel);
            reject_busy(&stream);
            continue;
        }
        let slot = ClientSlot(Arc::clone(&active));
        let sender = sender.clone();
        let spawned = thread::Builder::new().name("svrd-mgmt-client".into()).spawn(move || {
            let _slot = slot;
            if let Err(error) = serve(&stream, &sender) {
                tracing::warn!(%error, "management request failed");
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a thread for a management connection");
        }
    }
}

/// One of the `MAX_CLIENTS` connection slots, given back when the connection's thread ends.
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn reject_busy(stream: &UnixStream) {
    let reply = Reply::error(format!(
        "svrd is already serving {MAX_CLIENTS} management clients; try again"
    ));
    let deadline = Instant::now() + Duration::from_millis(100);
    if let Err(error) = write_message(stream, &reply, deadline) {
        tracing::debug!(%error, "cannot send the busy reply");
    }
}

fn serve(stream: &UnixStream, sender: &mpsc::Sender<Pending>) -> Result<(), MgmtError> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let line = read_message(stream, deadline, REQUEST_TIMEOUT).map_err(|error| match error {
        MgmtError::TimedOut(timeout) => MgmtError::RequestTimedOut(timeout),
        other => other,
    })?;
    // A client that closes without sending (another svrd probing for a live socket) gets
    // no reply.
    if line.is_empty() {
        return Ok(());
    }

    let reply = match serde_json::from_slice::<Command>(&line) {
        Ok(command) => {
            let (reply_to, reply) = mpsc::sync_channel(1);
            if sender.send((command, reply_to)).is_err() {
                Reply::error("svrd is stopping")
            } else {
                reply
                    .recv_timeout(REQUEST_TIMEOUT)
                    .unwrap_or_else(|_| Reply::error("svrd did not answer"))
            }
        }
        Err(error) => Reply::error(format!("malformed request: {error}")),
    };
    write_message(stream, &reply, Instant::now() + REQUEST_TIMEOUT)
}

/// Sends `command` to the daemon listening on `path` and returns its reply, waiting at most
/// [`REQUEST_TIMEOUT`] for it.
pub fn request(path: &Path, command: &Command) -> Result<Reply, MgmtError> {
    request_within(path, command, REQUEST_TIMEOUT)
}

/// Sends `command` to the daemon listening on `path` and returns its reply, waiting at most
/// `timeout` for the exchange.
pub fn request_within(
    path: &Path,
    command: &Command,
    timeout: Duration,
) -> Result<Reply, MgmtError> {
    check_socket_path(path)?;
    let stream =
        UnixStream::connect(path).map_err(|e| MgmtError::Connect(path.to_path_buf(), e))?;
    exchange(&stream, command, timeout)
}

/// Sends `command` on `stream` and reads the reply. A daemon that turns a client away (too
/// many clients) replies and closes without reading the request, so a failed write is
/// followed by a read of that reply and reported only when there is none.
fn exchange(stream: &UnixStream, command: &Command, timeout: Duration) -> Result<Reply, MgmtError> {
    let deadline = Instant::now() + timeout;
    let written = write_message(stream, command, deadline);
    let line = match (written, read_message(stream, deadline, timeout)) {
        (_, Ok(line)) if !line.is_empty() => line,
        (Err(error), _) => return Err(error),
        (Ok(()), Ok(_)) => return Err(MgmtError::NoReply),
        (Ok(()), Err(error)) => return Err(error),
    };
    serde_json::from_slice(&line).map_err(|e| MgmtError::Malformed(e.to_string()))
}

/// Rejects a socket path that cannot be a management socket, before connecting, so the
/// error says what is wrong with it.
fn check_socket_path(path: &Path) -> Result<(), MgmtError> {
    let len = path.as_os_str().len();
    if len > MAX_PATH_LEN {
        return Err(MgmtError::PathTooLong(path.to_path_buf(), len));
    }
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Err(MgmtError::IsDirectory(path.to_path_buf())),
        Ok(metadata) if !metadata.file_type().is_socket() => {
            Err(MgmtError::NotSocket(path.to_path_buf()))
        }
        // A missing path or one that cannot be inspected is reported by connect.
        _ => Ok(()),
    }
}

/// Reads one newline-terminated message, or everything up to end of file, before
/// `deadline`. `timeout` is the whole wait, for the error message.
fn read_message(
    mut stream: &UnixStream,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, MgmtError> {
    let mut message = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(MgmtError::TimedOut(timeout));
        }
        stream.set_read_timeout(Some(remaining)).map_err(MgmtError::Socket)?;
        let count = match stream.read(&mut chunk) {
            Ok(count) => count,
            Err(error) if is_timeout(&error) => return Err(MgmtError::TimedOut(timeout)),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(MgmtError::Socket(error)),
        };
        if count == 0 {
            return Ok(message);
        }
        let received = &chunk[..count];
        if let Some(end) = received.iter().position(|&byte| byte == b'\n') {
            message.extend_from_slice(&received[..end]);
            return check_length(message);
        }
        message.extend_from_slice(received);
        if message.len() > MAX_MESSAGE_LEN {
            return Err(MgmtError::TooLarge(MAX_MESSAGE_LEN));
        }
    }
}

fn check_length(message: Vec<u8>) -> Result<Vec<u8>, MgmtError> {
    if message.len() > MAX_MESSAGE_LEN {
        return Err(MgmtError::TooLarge(MAX_MESSAGE_LEN));
    }
    Ok(message)
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

fn write_message(
    mut stream: &UnixStream,
    message: &impl serde::Serialize,
    deadline: Instant,
) -> Result<(), MgmtError> {
    let mut bytes = serde_json::to_vec(message).map_err(|e| MgmtError::Malformed(e.to_string()))?;
    bytes.push(b'\n');
    let remaining =
        deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_write_timeout(Some(remaining)).map_err(MgmtError::Socket)?;
    stream.write_all(&bytes).map_err(MgmtError::Socket)
}

/// Why a management exchange failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MgmtError {
    /// No daemon listens on the socket.
    Connect(PathBuf, std::io::Error),
    /// Creating or binding the socket failed.
    Io(PathBuf, std::io::Error),
    /// The path exists and is not a socket.
    NotSocket(PathBuf),
    /// The path is a directory.
    IsDirectory(PathBuf),
    /// The path is longer than a Unix socket address allows; the length in bytes.
    PathTooLong(PathBuf, usize),
    /// Another process listens on the socket.
    InUse(PathBuf),
    /// Reading or writing the connection failed.
    Socket(std::io::Error),
    /// The other side sent no complete message within the timeout.
    TimedOut(Duration),
    /// A client sent no complete request within the timeout.
    RequestTimedOut(Duration),
    /// The other side's message is longer than the limit, in bytes.
    TooLarge(usize),
    /// The other side sent something that is not a valid message.
    Malformed(String),
    /// svrd closed the connection without a reply.
    NoReply,
}

impl MgmtError {
    fn io(path: &Path, error: std::io::Error) -> MgmtError {
        MgmtError::Io(path.to_path_buf(), error)
    }
}

impl fmt::Display for MgmtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MgmtError::Connect(path, error) => write!(
                f,
                "cannot connect to svrd at {}: {error} (is svrd running? see --socket)",
                path.display()
            ),
            MgmtError::Io(path, error) => write!(f, "{}: {error}", path.display()),
            MgmtError::NotSocket(path) => {
                write!(f, "{} exists and is not a socket", path.display())
            }
            MgmtError::IsDirectory(path) => {
                write!(f, "{} is a directory, not a socket", path.display())
            }
            MgmtError::PathTooLong(path, len) => write!(
                f,
                "socket path {} is too long: {len} bytes, the maximum is {MAX_PATH_LEN}",
                path.display()
            ),
            MgmtError::InUse(path) => {
                write!(f, "another svrd is listening on {}", path.display())
            }
            MgmtError::Socket(error) => write!(f, "management connection failed: {error}"),
            MgmtError::TimedOut(timeout) => {
                write!(f, "no reply from svrd: timed out after {} s", timeout.as_secs_f64())
            }
            MgmtError::RequestTimedOut(timeout) => write!(
                f,
                "management client sent no complete request: timed out after {} s",
                timeout.as_secs_f64()
            ),
            MgmtError::TooLarge(limit) => {
                write!(f, "management message exceeds the limit of {limit} bytes")
            }
            MgmtError::Malformed(detail) => write!(f, "malformed management message: {detail}"),
            MgmtError::NoReply => f.write_str("svrd closed the connection without a reply"),
        }
    }
}

impl std::error::Error for MgmtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MgmtError::Connect(_, error) | MgmtError::Io(_, error) | MgmtError::Socket(error) => {
                Some(error)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::AtomicU32;

    /// A fresh directory under the system temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("svrd-mgmt-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Replies ok to every request, with the command as text, until the server drops.
    fn answer(requests: mpsc::Receiver<Pending>) {
        thread::spawn(move || {
            for (command, reply_to) in requests {
                let _ = reply_to.send(Reply::ok(format!("{command:?}"), serde_json::Value::Null));
            }
        });
    }

    #[test]
    fn reply_read_after_refused_request() {
        // A busy svrd replies and closes before reading, so the request cannot be written.
        let (client, daemon) = UnixStream::pair().unwrap();
        let busy = Reply::error("svrd is already serving 16 management clients; try again");
        write_message(&daemon, &busy, Instant::now() + Duration::from_secs(1)).unwrap();
        drop(daemon);

        let reply = exchange(&client, &Command::ShowStats, Duration::from_secs(1)).unwrap();

        assert!(!reply.ok);
        assert!(reply.text.contains("already serving"), "{}", reply.text);
    }

    #[test]
    fn close_without_reply_named() {
        let (client, daemon) = UnixStream::pair().unwrap();
        let reader = thread::spawn(move || {
            let mut request = String::new();
            BufReader::new(&daemon).read_line(&mut request).unwrap();
            request
        });

        let error = exchange(&client, &Command::ShowStats, Duration::from_secs(1)).unwrap_err();

        assert!(matches!(error, MgmtError::NoReply), "{error}");
        assert!(reader.join().unwrap().ends_with('\n'), "the request was sent whole");
    }

    #[test]
    fn start_rejects_regular_file() {
        let dir = TempDir::new();
        let path = dir.join("precious.txt");
        std::fs::write(&path, "precious data").unwrap();

        let error = Server::start(&path).unwrap_err();

        assert!(matches!(error, MgmtError::NotSocket(_)), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious data");
    }

    #[test]
    fn start_rejects_live_socket() {
        let dir = TempDir::new();
        let path = dir.join("svrd.sock");
        let (_first, requests) = Server::start(&path).unwrap();
        answer(requests);

        let error = Server::start(&path).unwrap_err();

        assert!(matches!(error, MgmtError::InUse(_)), "{error}");
        assert!(error.to_string().contains("another svrd is listening on"), "{error}");
        let reply = request(&path, &Command::ShowStats).unwrap();
        assert!(reply.ok);
    }

    #[test]
    fn start_replaces_stale_socket() {
        let dir = TempDir::new();
        let path = dir.join("svrd.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let (_server, requests) = Server::start(&path).unwrap();
        answer(requests);

        assert!(request(&path, &Command::ShowAlarms).unwrap().ok);
    }

    #[test]
    fn drop_removes_own_socket() {
        let dir = TempDir::new();
        let path = dir.join("svrd.sock");
        let (server, _requests) = Server::start(&path).unwrap();

        drop(server);

        assert!(!path.exists());
    }

    #[test]
    fn drop_ends_listener_thread() {
        let dir = TempDir::new();
        let path = dir.join("svrd.sock");
        let (server, requests) = Server::start(&path).unwrap();

        drop(server);

        // The listener thread holds the only sender, so the channel closes when it ends.
        let closed = requests.recv_timeout(Duration::from_secs(5));
        assert_eq!(closed.err(), Some(mpsc::RecvTimeoutError::Disconnected));
    }

    #[test]
    fn drop_keeps_replaced_socket() {
        let dir = TempDir::new();
        let path = dir.join("svrd.sock");
        let (server, _requests) = Server::start(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let _other = UnixListener::bind(&path).unwrap();

        drop(server);

        assert!(path.exists());
    }

    #[test]
    fn slow_client_blocks_nobody() {
        let dir = TempDir::new();
        let path = dir.join("svrd.sock");
        let (_server, requests) = Server::start(&path).unwrap();
        answer(requests);
        // Two clients that connect and send half a request, then wait.
        let mut slow = Vec::new();
        for _ in 0..2 {
            let mut stream = UnixStream::connect(&path).unwrap();
            stream.write_all(b"{\"command\":").unwrap();
            slow.push(stream);
        }

        let began = Instant::now();
        let reply = request_within(&path, &Command::ShowStats, Duration::from_secs(4)).unwrap();

        assert!(reply.ok);
        assert!(began.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn server_times_out_whole_request() {
        let dir = TempDir::new();
        let path = dir.join("svrd.sock");
        let (_server, requests) = Server::start(&path).unwrap();
        answer(requests);
        let mut stream = UnixStream::connect(&path).unwrap();
        let began = Instant::now();

        // A byte every half second never completes a request, but each read succeeds.
        let mut closed = false;
        for _ in 0..12 {
            if stream.write_all(b" ").is_err() {
                closed = true;
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }

        assert!(closed, "the server kept a trickling client past its deadline");
        assert!(began.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(2));
    }

    #[test]
    fn request_silent_server_times_out() {
        let dir = TempDir::new();
        let path = dir.join("silent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let holder = thread::spawn(move || listener.accept().map(|(stream, _)| stream));

        let error =
            request_within(&path, &Command::ShowStats, Duration::from_millis(200)).unwrap_err();

        assert!(matches!(error, MgmtError::TimedOut(_)), "{error}");
        assert!(error.to_string().contains("timed out after 0.2 s"), "{error}");
        drop(holder.join());
    }

    #[test]
    fn request_oversized_reply_names_limit() {
        let dir = TempDir::new();
        let path = dir.join("huge.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let sender = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let chunk = vec![b'A'; 1 << 16];
            for _ in 0..(MAX_MESSAGE_LEN >> 16) + 2 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
        });

        let error = request_within(&path, &Command::ShowStats, Duration::from_secs(5)).unwrap_err();

        assert!(matches!(error, MgmtError::TooLarge(MAX_MESSAGE_LEN)), "{error}");
        assert!(error.to_string().contains(&MAX_MESSAGE_LEN.to_string()), "{error}");
        drop(sender.join());
    }

    #[test]
    fn request_directory_says_so() {
        let dir = TempDir::new();

        let error = request(&dir.0, &Command::ShowStats).unwrap_err();

        assert!(matches!(error, MgmtError::IsDirectory(_)), "{error}");
        assert!(error.to_string().contains("is a directory"), "{error}");
    }

    #[test]
    fn request_regular_file_says_so() {
        let dir = TempDir::new();
        let path = dir.join("file");
        std::fs::write(&path, "").unwrap();

        let error = request(&path, &Command::ShowStats).unwrap_err();

        assert!(matches!(error, MgmtError::NotSocket(_)), "{error}");
        assert!(error.to_string().contains("is not a socket"), "{error}");
    }

    #[test]
    fn request_long_path_says_so() {
        let path = PathBuf::from(format!("/tmp/{}", "s".repeat(200)));

        let error = request(&path, &Command::ShowStats).unwrap_err();

        assert!(matches!(error, MgmtError::PathTooLong(_, 205)), "{error}");
        assert!(error.to_string().contains("too long"), "{error}");
    }
}
