//! The Unix socket: a listener thread in `svrd` that hands each request to the control
//! thread and writes back its reply, and the client call `svrctl` makes.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::{Command, Reply};

/// Largest request or reply accepted, in bytes. A reply with every peer's certificates is
/// far smaller; the cap bounds what a misbehaving client can make the daemon buffer.
pub const MAX_MESSAGE_LEN: usize = 4 << 20;

/// How long either side waits for the other to send its message.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A request waiting for the control thread, with the channel its reply goes back on.
pub type Pending = (Command, mpsc::SyncSender<Reply>);

/// The daemon side: a thread accepting connections on the socket.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
}

impl Server {
    /// Binds the socket (replacing a stale one), readable and writable by the owner and
    /// group only, and starts the listener thread. Requests arrive on the returned
    /// receiver; the control thread answers each on its reply channel.
    pub fn start(path: &Path) -> Result<(Server, mpsc::Receiver<Pending>), MgmtError> {
        if path.exists() {
            std::fs::remove_file(path).map_err(|e| MgmtError::io(path, e))?;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| MgmtError::io(parent, e))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| MgmtError::io(path, e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| MgmtError::io(path, e))?;

        let (sender, receiver) = mpsc::channel();
        thread::Builder::new()
            .name("svrd-mgmt".into())
            .spawn(move || accept_loop(&listener, &sender))
            .map_err(|e| MgmtError::io(path, e))?;
        Ok((Server { path: path.to_path_buf() }, receiver))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, sender: &mpsc::Sender<Pending>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            continue;
        };
        if let Err(error) = serve(stream, sender) {
            tracing::warn!(%error, "management request failed");
        }
    }
}

fn serve(stream: UnixStream, sender: &mpsc::Sender<Pending>) -> Result<(), MgmtError> {
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(MgmtError::Socket)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(MgmtError::Socket)?;
    let mut line = String::new();
    let mut reader = BufReader::new((&stream).take(MAX_MESSAGE_LEN as u64));
    reader.read_line(&mut line).map_err(MgmtError::Socket)?;

    let reply = match serde_json::from_str::<Command>(&line) {
        Ok(command) => {
            let (reply_to, reply) = mpsc::sync_channel(1);
            if sender.send((command, reply_to)).is_err() {
                Reply::error("svrd is stopping")
            } else {
                reply
                    .recv_timeout(IO_TIMEOUT)
                    .unwrap_or_else(|_| Reply::error("svrd did not answer"))
            }
        }
        Err(error) => Reply::error(format!("malformed request: {error}")),
    };
    write_message(&stream, &reply)
}

/// Sends `command` to the daemon listening on `path` and returns its reply.
pub fn request(path: &Path, command: &Command) -> Result<Reply, MgmtError> {
    let stream =
        UnixStream::connect(path).map_err(|e| MgmtError::Connect(path.to_path_buf(), e))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(MgmtError::Socket)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(MgmtError::Socket)?;
    write_message(&stream, command)?;

    let mut line = String::new();
    BufReader::new((&stream).take(MAX_MESSAGE_LEN as u64))
        .read_line(&mut line)
        .map_err(MgmtError::Socket)?;
    serde_json::from_str(&line).map_err(|e| MgmtError::Malformed(e.to_string()))
}

fn write_message(
    mut stream: &UnixStream,
    message: &impl serde::Serialize,
) -> Result<(), MgmtError> {
    let mut bytes = serde_json::to_vec(message).map_err(|e| MgmtError::Malformed(e.to_string()))?;
    bytes.push(b'\n');
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
    /// Reading or writing the connection failed or timed out.
    Socket(std::io::Error),
    /// The other side sent something that is not a valid message.
    Malformed(String),
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
            MgmtError::Socket(error) => write!(f, "management connection failed: {error}"),
            MgmtError::Malformed(detail) => write!(f, "malformed management message: {detail}"),
        }
    }
}

impl std::error::Error for MgmtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MgmtError::Connect(_, error) | MgmtError::Io(_, error) | MgmtError::Socket(error) => {
                Some(error)
            }
            MgmtError::Malformed(_) => None,
        }
    }
}
