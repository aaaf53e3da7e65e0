//! The process executor's fence: a token file holding the highest fencing
//! token that ever ran an action on this host. An action with a lower token
//! is refused (a stale leader); the compare and the raise happen under an
//! exclusive `flock` on the file, so two instances cannot both pass.
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("fenced off: token {token} is older than {highest}, the highest that acted")]
    Stale { token: u64, highest: u64 },
    #[error("fence file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Admit an action carrying `token`: fails when a newer token already acted.
/// Equal tokens pass (one leader, many actions); a higher one is recorded.
pub fn admit(path: &Path, token: u64) -> Result<(), FenceError> {
    let io = |source: std::io::Error| FenceError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    let mut lock =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io(std::io::Error::from(e)))?;
    let mut text = String::new();
    lock.read_to_string(&mut text).map_err(io)?;
    let highest = text.trim().parse::<u64>().unwrap_or(0);
    if token < highest {
        return Err(FenceError::Stale { token, highest });
    }
    if token > highest {
        lock.set_len(0).map_err(io)?;
        lock.seek(SeekFrom::Start(0)).map_err(io)?;
        lock.write_all(format!("{token}\n").as_bytes())
            .map_err(io)?;
        lock.sync_all().map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_lower_token_is_refused_after_a_higher_one_acted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fence");
        admit(&p, 5).unwrap();
        admit(&p, 5).unwrap();
        admit(&p, 9).unwrap();
        match admit(&p, 5) {
            Err(FenceError::Stale { token, highest }) => assert_eq!((token, highest), (5, 9)),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap().trim(), "9");
    }
}
