//! Follow a log file like `tail -F`: survives truncation (copytruncate) and
//! rename + recreate (logrotate's default), reads at most a bounded amount
//! per poll and keeps at most one bounded partial line.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Most bytes read per poll; the rest is read on later polls.
pub const MAX_READ_PER_POLL: usize = 8 << 20;
/// Longest line kept; longer lines are cut to this length.
pub const MAX_LINE: usize = 64 << 10;

pub struct Tailer {
    path: PathBuf,
    file: Option<File>,
    id: Option<(u64, u64)>,
    offset: u64,
    partial: Vec<u8>,
    /// Read an already existing file from the start (otherwise from its end).
    from_start: bool,
    opened_once: bool,
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Tailer {
    pub fn new(path: impl Into<PathBuf>, from_start: bool) -> Tailer {
        Tailer {
            path: path.into(),
            file: None,
            id: None,
            offset: 0,
            partial: Vec::new(),
            from_start,
            opened_once: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> io::Result<bool> {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Whatever appears from now on is new: read it whole.
                self.opened_once = true;
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let m = f.metadata()?;
        // The first file found is read from its end unless asked otherwise; a
        // file that appears later (created or rotated in) is read whole.
        self.offset = if !self.opened_once && !self.from_start {
            m.len()
        } else {
            0
        };
        self.opened_once = true;
        self.id = Some(file_id(&m));
        self.file = Some(f);
        self.partial.clear();
        Ok(true)
    }

    /// Read what the open file has from `offset`, up to `budget` bytes, into lines.
    fn drain(&mut self, budget: &mut usize, lines: &mut Vec<String>) -> io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = vec![0u8; 64 << 10];
        while *budget > 0 {
            let want = buf.len().min(*budget);
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            *budget -= n;
            self.offset += n as u64;
            for &b in &buf[..n] {
                if b == b'\n' {
                    let mut line = std::mem::take(&mut self.partial);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    lines.push(String::from_utf8_lossy(&line).into_owned());
                } else if self.partial.len() < MAX_LINE {
                    self.partial.push(b);
                }
            }
        }
        Ok(())
    }

    /// Complete lines appended since the last poll.
    pub fn poll(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut budget = MAX_READ_PER_POLL;
        if self.file.is_none() && !self.open()? {
            return Ok(lines);
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if Some(file_id(&m)) != self.id => {
                // Rotated: finish the old file, then follow the new one from its start.
                self.drain(&mut budget, &mut lines)?;
                self.file = None;
                if self.open()? {
                    self.offset = 0;
                }
            }
            Ok(m) if m.len() < self.offset => {
                // Truncated in place.
                self.offset = 0;
                self.partial.clear();
            }
            Ok(_) => {}
            // Renamed away and not yet recreated: keep reading the old handle.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.drain(&mut budget, &mut lines)?;
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn follows_appends_truncation_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut t = Tailer::new(&p, false);
        assert!(t.poll().unwrap().is_empty(), "missing file is not an error");
        append(&p, "old line\n");
        // First open of a file created after start: read whole (it appeared later).
        assert_eq!(t.poll().unwrap(), vec!["old line"]);
        append(&p, "a\nb\npart");
        assert_eq!(t.poll().unwrap(), vec!["a", "b"]);
        append(&p, "ial\r\n");
        assert_eq!(t.poll().unwrap(), vec!["partial"]);
        // copytruncate
        std::fs::write(&p, "").unwrap();
        assert!(t.poll().unwrap().is_empty());
        append(&p, "after truncate\n");
        assert_eq!(t.poll().unwrap(), vec!["after truncate"]);
        // rename + recreate, with a last line written to the old file after the rename
        let rotated = dir.path().join("app.log.1");
        std::fs::rename(&p, &rotated).unwrap();
        append(&rotated, "late old\n");
        assert_eq!(t.poll().unwrap(), vec!["late old"]);
        append(&p, "new file\n");
        assert_eq!(t.poll().unwrap(), vec!["new file"]);
        append(&rotated, "ignored: old file no longer followed\n");
        append(&p, "more\n");
        assert_eq!(t.poll().unwrap(), vec!["more"]);
    }

    #[test]
    fn existing_file_starts_at_end_unless_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        append(&p, "history\n");
        let mut t = Tailer::new(&p, false);
        assert!(t.poll().unwrap().is_empty());
        append(&p, "new\n");
        assert_eq!(t.poll().unwrap(), vec!["new"]);
        let mut t = Tailer::new(&p, true);
        assert_eq!(t.poll().unwrap(), vec!["history", "new"]);
    }

    #[test]
    fn long_lines_are_cut_and_reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.log");
        let mut t = Tailer::new(&p, true);
        let long = "x".repeat(MAX_LINE * 2);
        append(&p, &format!("{long}\nshort\n"));
        let lines = t.poll().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "short");
    }
}
