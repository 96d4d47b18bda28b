//! `cat`: a file passed on a chunk at a time, each chunk read on a blocking trip of its own (a
//! permit of the phone's each, [`crate::sim::work`]) and handed to the output before the next
//! is read. Streamed (`adb shell`), the shell holds one chunk whatever the file's size, the
//! host's pace sets the reading's, and a stream that closes stops the reading between two
//! chunks; no thread waits for the host meanwhile. Kept (RunCommand), reading stops at the
//! output's cap.

use std::io::{self, Read};

use super::files::{self, errno_text};
use super::{Flow, Shell};

/// What one trip reads: the size of a pipe of the shell adapter, so a chunk goes out whole.
const CHUNK: usize = 64 * 1024;

impl Shell<'_> {
    pub(super) async fn cat(&mut self, args: &[String]) -> io::Result<Flow> {
        let Some((_, operands)) = files::flags("cat", args, "u", &mut self.out) else {
            return Ok(Flow::Next(1));
        };
        let mut status = 0;
        for p in &operands {
            // No stdin to read: the shell has no pipes.
            if p == "-" {
                continue;
            }
            let (ctx, path) = (self.fs_ctx(), p.clone());
            let opened = self
                .phone
                .work()
                .blocking(move || Ok(files::open_file("cat", &ctx, &path)))
                .await?;
            let mut file = match opened {
                Ok(f) => f,
                Err(line) => {
                    self.out.err_line(&line);
                    status = 1;
                    continue;
                }
            };
            loop {
                let work = self.phone.work().clone();
                let (back, chunk) = self
                    .phone
                    .work()
                    .blocking(move || {
                        let mut buf = vec![0u8; CHUNK];
                        let read = loop {
                            match file.read(&mut buf) {
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                r => break r,
                            }
                        };
                        let chunk = read.map(|n| {
                            work.add_read(n);
                            buf.truncate(n);
                            buf
                        });
                        Ok((file, chunk))
                    })
                    .await?;
                file = back;
                match chunk {
                    Ok(c) if c.is_empty() => break,
                    Ok(c) => self.out.write(&c),
                    Err(e) => {
                        self.out.err_line(&format!("cat: {p}: {}", errno_text(&e)));
                        status = 1;
                        break;
                    }
                }
                if !self.flush().await {
                    return Ok(Flow::Gone);
                }
                if self.out.truncated {
                    break;
                }
            }
        }
        Ok(Flow::Next(status))
    }
}
