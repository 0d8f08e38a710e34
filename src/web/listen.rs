//! Where the server listens: `host:port`, a unix socket path, or `fd:N`, a
//! listening socket inherited from whoever started us (mod_fcgid passes
//! fd 0, systemd socket activation fd 3). A socket file we create gets the
//! configured mode, replaces a stale one, and is removed when we stop.

use std::fmt;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, ensure, Context};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A listening address as the command line and the configuration give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port` (port 0 picks a free one).
    Tcp(String),
    /// A unix socket path: anything with a `/`.
    Unix(PathBuf),
    /// `fd:N`: an inherited listening socket.
    Fd(i32),
}

impl FromStr for Address {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Address> {
        let text = text.trim();
        if let Some(fd) = text.strip_prefix("fd:") {
            let fd: i32 = fd.parse().with_context(|| {
                format!("{text:?} is not a file descriptor: write fd:N with N a number, like fd:3")
            })?;
            ensure!(fd >= 0, "{text:?}: a file descriptor is not negative");
            return Ok(Address::Fd(fd));
        }
        if text.contains('/') {
            return Ok(Address::Unix(PathBuf::from(text)));
        }
        let port = text.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
        match port {
            Some(Ok(_)) if !text.starts_with(':') => Ok(Address::Tcp(text.to_string())),
            _ => bail!(
                "{text:?} is not an address: write host:port (127.0.0.1:9000), a unix socket \
                 path (/run/imagenet-classroom/fcgi.sock) or fd:N"
            ),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(address) => f.write_str(address),
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

/// A bound, listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// `created` is the socket file to remove when we stop; `None` for an
    /// inherited socket, which belongs to whoever made it.
    Unix {
        listener: UnixListener,
        created: Option<PathBuf>,
    },
}

/// An accepted connection.
pub enum Connection {
    Tcp(TcpStream, std::net::SocketAddr),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `address`; a unix socket file gets `socket_mode`.
    pub async fn bind(address: &Address, socket_mode: u32) -> anyhow::Result<Listener> {
        match address {
            Address::Tcp(text) => {
                let listener = TcpListener::bind(text.as_str())
                    .await
                    .with_context(|| format!("cannot listen on {text}"))?;
                Ok(Listener::Tcp(listener))
            }
            Address::Unix(path) => bind_unix(path, socket_mode).await,
            Address::Fd(fd) => inherit(*fd),
        }
    }

    /// What the ready line shows: the real address, port and all.
    pub fn local(&self) -> String {
        match self {
            Listener::Tcp(listener) => {
                listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string())
            }
            Listener::Unix { listener, .. } => listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_else(|| "an unnamed unix socket".into()),
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> std::io::Result<Connection> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok(Connection::Tcp(stream, peer))
            }
            Listener::Unix { listener, .. } => Ok(Connection::Unix(listener.accept().await?.0)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix { created: Some(path), .. } = self {
            if let Err(e) = std::fs::remove_file(&*path) {
                log::warn!("cannot remove socket {}: {e}", path.display());
            }
        }
    }
}

async fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<Listener> {
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        ensure!(
            metadata.file_type().is_socket(),
            "{} exists and is not a socket: remove it or choose another socket path",
            path.display()
        );
        // A socket that still answers belongs to a running server.
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "another server is already listening on {}: stop it first or choose another \
                 socket path",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    let listener = Listener::Unix { listener, created: Some(path.to_path_buf()) };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {} to {mode:04o}", path.display()))?;
    Ok(listener)
}

fn inherit(fd: i32) -> anyhow::Result<Listener> {
    // SAFETY: the fd is ours from here on: whoever started us passed it for
    // us to listen on, and nothing else in the process uses it.
    let socket = unsafe { socket2::Socket::from_raw_fd(fd) };
    let hint = || {
        format!(
            "fd:{fd} is not a listening socket (is the server started by mod_fcgid or a \
             systemd .socket unit?)"
        )
    };
    let local = socket.local_addr().with_context(hint)?;
    ensure!(socket.is_listener().with_context(hint)?, hint());
    socket.set_nonblocking(true).with_context(|| format!("cannot use fd:{fd}"))?;
    if local.as_socket().is_some() {
        let listener = TcpListener::from_std(std::net::TcpListener::from(socket))?;
        Ok(Listener::Tcp(listener))
    } else if local.is_unix() {
        let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(socket))?;
        Ok(Listener::Unix { listener, created: None })
    } else {
        bail!("fd:{fd} is neither a TCP nor a unix socket")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let ok = [
            ("127.0.0.1:9000", Address::Tcp("127.0.0.1:9000".into())),
            ("localhost:0", Address::Tcp("localhost:0".into())),
            ("[::1]:8080", Address::Tcp("[::1]:8080".into())),
            ("/run/ic/fcgi.sock", Address::Unix("/run/ic/fcgi.sock".into())),
            ("./fcgi.sock", Address::Unix("./fcgi.sock".into())),
            ("fd:0", Address::Fd(0)),
            ("fd:3", Address::Fd(3)),
        ];
        for (text, expected) in ok {
            assert_eq!(text.parse::<Address>().unwrap(), expected, "{text}");
        }
        for bad in ["9000", "localhost", ":9000", "host:http", "fd:x", "fd:-1", ""] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} should be refused");
        }
    }
}
