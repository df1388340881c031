//! A two-stage pipeline over the machine's second core: a producer writes on a helper thread, and what it
//! writes is handed, in large buffers, to a consumer on the calling thread. `encrypt` uses it to run OpenSSL's
//! encryption beside the base64 encoding and writing of its output, `decrypt -o` to run the decryption beside
//! the writing of the plaintext; otherwise they take turns on one core. The buffers are wiped when dropped
//! (they may hold plaintext).

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// Buffers in flight between the two threads (besides the one each side holds): enough to absorb jitter,
/// few enough to keep memory flat.
const IN_FLIGHT: usize = 2;
/// Buffers the producer allocates at most; then it waits for the consumer to return one. New buffers cost
/// page faults (and a free an unmap), recycled ones nothing.
const BUFFERS: usize = IN_FLIGHT + 2;

/// Runs `produce` on a helper thread and writes everything it writes to `consume`, on this thread, in order:
/// through [`Chunks`]'s `Write`, in buffers of exactly `chunk` bytes (the last may be shorter), or as the
/// buffers it passes to [`Chunks::send`].
///
/// Fails with the producer's error if it fails; with the consumer's write error (as an output error) if
/// writing fails, in which case the producer's next write fails and it stops. Whatever reached `consume`
/// before an error is incomplete.
pub fn offload<F>(chunk: usize, consume: &mut dyn Write, produce: F) -> Result<()>
where
    F: FnOnce(&mut Chunks) -> Result<()> + Send,
{
    assert!(chunk > 0, "offload: chunk must not be empty");
    let (full_tx, full_rx) = sync_channel::<Zeroizing<Vec<u8>>>(IN_FLIGHT);
    let (free_tx, free_rx) = sync_channel::<Zeroizing<Vec<u8>>>(BUFFERS);
    std::thread::scope(|s| {
        let producer = std::thread::Builder::new()
            .name("smimekit-produce".into())
            .spawn_scoped(s, move || {
                let mut w = Chunks {
                    cur: Zeroizing::new(Vec::with_capacity(chunk)),
                    chunk,
                    allocated: 1,
                    full: full_tx,
                    free: free_rx,
                };
                produce(&mut w)?;
                w.send_current()
                    .map_err(|_| Error::new(ErrorKind::Io, "the output stopped"))
            })
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start a thread: {e}")))?;
        // Drained, both channels close: a producer still writing or waiting for a buffer (after a write
        // error) fails instead of waiting.
        let written = drain(full_rx, free_tx, consume);
        let produced = producer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (written, produced) {
            (Err(e), _) => Err(Error::output(e)),
            (Ok(()), r) => r,
        }
    })
}

fn drain(
    full: Receiver<Zeroizing<Vec<u8>>>,
    free: SyncSender<Zeroizing<Vec<u8>>>,
    out: &mut dyn Write,
) -> io::Result<()> {
    for mut buf in full.iter() {
        out.write_all(&buf)?;
        buf.clear();
        // Recycled: a fresh buffer per chunk would cost page faults on every one. A full channel just drops it.
        let _ = free.try_send(buf);
    }
    Ok(())
}

/// The producer's side of [`offload`]: a writer that fills `chunk`-sized buffers and sends each when full, or
/// [`Chunks::send`] for buffers the producer filled itself.
pub struct Chunks {
    cur: Zeroizing<Vec<u8>>,
    chunk: usize,
    /// Buffers allocated so far (at most [`BUFFERS`] while the consumer runs).
    allocated: usize,
    full: SyncSender<Zeroizing<Vec<u8>>>,
    free: Receiver<Zeroizing<Vec<u8>>>,
}

impl Chunks {
    /// An empty buffer: a recycled one if one is back from the consumer, else a new one while fewer than
    /// [`BUFFERS`] exist, else the next one the consumer returns.
    fn fresh(&mut self) -> Zeroizing<Vec<u8>> {
        if let Ok(b) = self.free.try_recv() {
            return b;
        }
        if self.allocated >= BUFFERS
            && let Ok(b) = self.free.recv()
        {
            return b;
        }
        // Still allowed, or the consumer is gone (the next send fails and says so).
        self.allocated += 1;
        Zeroizing::new(Vec::with_capacity(self.chunk))
    }

    fn send_current(&mut self) -> io::Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let next = self.fresh();
        let buf = std::mem::replace(&mut self.cur, next);
        self.full
            .send(buf)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the consumer stopped"))
    }

    /// Hands `buf` to the consumer as it is (after whatever was written before), without copying it, and
    /// returns an empty buffer to fill next.
    pub fn send(&mut self, buf: Vec<u8>) -> io::Result<Vec<u8>> {
        self.send_current()?;
        if !buf.is_empty() {
            self.full
                .send(Zeroizing::new(buf))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the consumer stopped"))?;
        }
        Ok(std::mem::take(&mut *self.fresh()))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let k = (self.chunk - self.cur.len()).min(data.len());
        self.cur.extend_from_slice(&data[..k]);
        if self.cur.len() == self.chunk {
            self.send_current()?;
        }
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_everything_in_order_in_whole_chunks() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        struct Sizes(Vec<u8>, Vec<usize>);
        impl Write for Sizes {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.extend_from_slice(b);
                self.1.push(b.len());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = Sizes(Vec::new(), Vec::new());
        offload(57 * 100, &mut out, |w| {
            for piece in data.chunks(4093) {
                w.write_all(piece).map_err(Error::output)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(out.0, data);
        let (last, rest) = out.1.split_last().unwrap();
        assert!(rest.iter().all(|&n| n == 5700) && *last <= 5700);
    }

    #[test]
    fn sent_buffers_keep_their_place() {
        let mut out = Vec::new();
        offload(4, &mut out, |w| {
            w.write_all(b"abcdef").map_err(Error::output)?;
            let mut b = w.send(b"GHI".to_vec()).map_err(Error::output)?;
            assert!(b.is_empty());
            b.extend_from_slice(b"jk");
            w.send(b).map_err(Error::output)?;
            w.write_all(b"l").map_err(Error::output)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(out, b"abcdefGHIjkl");
    }

    #[test]
    fn errors_from_either_side() {
        let mut sink = Vec::new();
        let e = offload(16, &mut sink, |w| {
            w.write_all(&[0; 40]).map_err(Error::output)?;
            Err(Error::new(ErrorKind::Io, "producer failed"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("producer failed"), "{e}");

        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        // The producer writes far more than the channel holds: it must be stopped, not left waiting.
        let e = offload(16, &mut Broken, |w| {
            for _ in 0..10_000 {
                w.write_all(&[1; 16]).map_err(Error::output)?;
            }
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
    }
}
