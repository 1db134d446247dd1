// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! The L4 buffers in front of a raw stream: a read buffer over a write buffer, the
//! layering of tokio's `BufStream`, with the same decisions (when to buffer, when to
//! bypass, when to flush), but each buffer is allocated only while it holds bytes.
//!
//! tokio's `BufReader` and `BufWriter` allocate their capacity when they are made and keep
//! it for the stream's life, so every open connection holds both buffers, although a
//! connection that waits (a client waiting on a long response, an upstream connection
//! streaming it) has nothing in either. Here the read buffer is taken when a read smaller
//! than it needs filling and given back once drained (or when the fill finds nothing to
//! read): to a one-buffer spare slot per thread, which the next fill takes, so a busy
//! connection neither allocates nor zeroes a buffer per read and an idle one holds none.
//! The write buffer is allocated at the first buffered write and released once flushed.
//! No crate offers buffers that give their memory back when empty.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A read buffer of `read_cap` bytes over a write buffer of `write_cap` bytes in front of
/// `S`; either capacity may be 0 (unbuffered). Bytes left in either buffer when the stream
/// is taken apart ([`BufferedStream::into_inner`]) are lost.
#[derive(Debug)]
pub(crate) struct BufferedStream<S> {
    inner: S,
    read_cap: usize,
    /// `read_cap` bytes while it holds unread bytes (`read_pos..read_filled`), else empty
    /// with no allocation.
    read_buf: Vec<u8>,
    read_pos: usize,
    read_filled: usize,
    write_cap: usize,
    /// Bytes not written yet (allocated with `write_cap` at the first buffered write, none
    /// when empty).
    write_buf: Vec<u8>,
    /// How much of `write_buf` an unfinished flush already wrote.
    written: usize,
}

impl<S> BufferedStream<S> {
    /// `inner` behind a read buffer of `read_cap` and a write buffer of `write_cap` bytes.
    pub(crate) fn with_capacity(read_cap: usize, write_cap: usize, inner: S) -> Self {
        BufferedStream {
            inner,
            read_cap,
            read_buf: Vec::new(),
            read_pos: 0,
            read_filled: 0,
            write_cap,
            write_buf: Vec::new(),
            written: 0,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The raw stream. Anything left in either buffer is lost.
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }

    fn release_read_buf(&mut self) {
        park_read_buf(std::mem::take(&mut self.read_buf));
        self.read_pos = 0;
        self.read_filled = 0;
    }
}

thread_local! {
    /// One released read buffer per thread, taken by the next fill of the same size: a
    /// connection that reads request after request (the listener default is 64 KiB) does not
    /// allocate and zero a buffer for each.
    static SPARE_READ_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A zeroed buffer of `len` bytes to fill: the thread's spare one when it has that size.
fn read_buf_to_fill(len: usize) -> Vec<u8> {
    let spare = SPARE_READ_BUF.with(|s| s.take());
    if spare.len() == len {
        return spare;
    }
    park_read_buf(spare);
    vec![0; len]
}

/// Gives `buf` (initialized to its length) back: kept as the thread's spare when that slot
/// is empty, freed otherwise.
fn park_read_buf(buf: Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    SPARE_READ_BUF.with(|s| {
        let old = s.replace(buf);
        if !old.is_empty() {
            s.set(old);
        }
    });
}

impl<S: AsyncWrite + Unpin> BufferedStream<S> {
    /// Writes out the write buffer, then releases it.
    fn flush_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let len = self.write_buf.len();
        let mut ret = Ok(());
        while self.written < len {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.write_buf[self.written..]))
            {
                Ok(0) => {
                    ret = Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the buffered data",
                    ));
                    break;
                }
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    ret = Err(e);
                    break;
                }
            }
        }
        if self.written == len {
            self.write_buf = Vec::new();
        } else if self.written > 0 {
            self.write_buf.drain(..self.written);
        }
        self.written = 0;
        Poll::Ready(ret)
    }

    fn buffer_write(&mut self, bytes: &[u8]) {
        if self.write_buf.capacity() == 0 {
            self.write_buf.reserve_exact(self.write_cap);
        }
        self.write_buf.extend_from_slice(bytes);
    }

    fn write_room(&self) -> usize {
        self.write_cap.saturating_sub(self.write_buf.len())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BufferedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Nothing buffered and a read at least as large as the buffer: read past it.
        if this.read_pos == this.read_filled && buf.remaining() >= this.read_cap {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.read_pos == this.read_filled {
            let mut fill = read_buf_to_fill(this.read_cap);
            let mut into = ReadBuf::new(&mut fill);
            match Pin::new(&mut this.inner).poll_read(cx, &mut into) {
                // A read that waits holds no buffer.
                Poll::Pending => {
                    park_read_buf(fill);
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    park_read_buf(fill);
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {
                    let n = into.filled().len();
                    if n == 0 {
                        park_read_buf(fill);
                        return Poll::Ready(Ok(())); // end of stream
                    }
                    this.read_buf = fill;
                    this.read_pos = 0;
                    this.read_filled = n;
                }
            }
        }
        let available = &this.read_buf[this.read_pos..this.read_filled];
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        this.read_pos += n;
        if this.read_pos == this.read_filled {
            this.release_read_buf();
        }
        Poll::Ready(Ok(()))
    }
}

// Reads do not go through the write buffer, as with tokio's `BufReader` over a `BufWriter`.
impl<S: AsyncWrite + Unpin> AsyncWrite for BufferedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.write_buf.len() + buf.len() > this.write_cap {
            ready!(this.flush_buf(cx))?;
        }
        if buf.len() >= this.write_cap {
            Pin::new(&mut this.inner).poll_write(cx, buf)
        } else {
            this.buffer_write(buf);
            Poll::Ready(Ok(buf.len()))
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.inner.is_write_vectored() {
            let total_len = bufs
                .iter()
                .fold(0usize, |acc, b| acc.saturating_add(b.len()));
            if total_len > this.write_room() {
                ready!(this.flush_buf(cx))?;
            }
            if total_len >= this.write_cap {
                // Cheaper to hand the slices on than to copy them.
                Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
            } else {
                bufs.iter().for_each(|b| this.buffer_write(b));
                Poll::Ready(Ok(total_len))
            }
        } else {
            while bufs.first().map(|b| b.len()) == Some(0) {
                bufs = &bufs[1..];
            }
            let Some(first) = bufs.first() else {
                return Poll::Ready(Ok(0));
            };
            let first_len = first.len();
            if first_len > this.write_room() {
                ready!(this.flush_buf(cx))?;
            }
            if first_len >= this.write_cap {
                return Pin::new(&mut this.inner).poll_write(cx, first);
            }
            this.buffer_write(first);
            let mut total_written = first_len;
            for b in &bufs[1..] {
                if b.len() > this.write_room() {
                    break;
                }
                this.buffer_write(b);
                total_written += b.len();
            }
            Poll::Ready(Ok(total_written))
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.flush_buf(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.flush_buf(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_are_buffered_and_the_buffer_goes_when_drained() {
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let mut s = BufferedStream::with_capacity(64, 0, ours);
        peer.write_all(b"hello world").await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"h");
        // the rest of the first read is held
        assert_eq!(s.read_buf.len(), 64);
        assert_eq!(s.read_filled - s.read_pos, 10);
        let mut rest = [0u8; 10];
        s.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"ello world");
        assert_eq!(s.read_buf.capacity(), 0);

        // a read at least as large as the buffer goes past it
        peer.write_all(&[7u8; 100]).await.unwrap();
        let mut big = [0u8; 100];
        let n = s.read(&mut big).await.unwrap();
        assert_eq!(n, 100);
        assert_eq!(s.read_buf.capacity(), 0);

        // a read that waits holds no buffer
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), s.read(&mut one));
        assert!(waiting.await.is_err());
        assert_eq!(s.read_buf.capacity(), 0);

        drop(peer);
        assert_eq!(s.read(&mut one).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn small_writes_wait_for_a_flush_and_the_buffer_goes_with_it() {
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let mut s = BufferedStream::with_capacity(0, 16, ours);
        s.write_all(b"head ").await.unwrap();
        s.write_all(b"body").await.unwrap();
        assert_eq!(s.write_buf.capacity(), 16);
        s.flush().await.unwrap();
        assert_eq!(s.write_buf.capacity(), 0);
        let mut got = [0u8; 9];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"head body");

        // what does not fit flushes what is held, and a large write goes straight out
        s.write_all(b"0123456789").await.unwrap();
        s.write_all(b"abcdefghij").await.unwrap();
        s.write_all(&[b'x'; 32]).await.unwrap();
        s.flush().await.unwrap();
        let mut got = vec![0u8; 52];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..20], b"0123456789abcdefghij");
        assert_eq!(&got[20..], &[b'x'; 32]);
        assert_eq!(s.write_buf.capacity(), 0);

        // vectored writes keep the order
        let parts = [IoSlice::new(b"ab"), IoSlice::new(b"cd")];
        let n = s.write_vectored(&parts).await.unwrap();
        assert_eq!(n, 4);
        s.write_all(b"ef").await.unwrap();
        s.shutdown().await.unwrap();
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"abcdef");
        assert_eq!(s.write_buf.capacity(), 0);
    }

    #[tokio::test]
    async fn zero_capacities_read_and_write_straight_through() {
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let mut s = BufferedStream::with_capacity(0, 0, ours);
        s.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        peer.read_exact(&mut one).await.unwrap();
        peer.write_all(b"yz").await.unwrap();
        s.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"y");
        assert_eq!(s.read_buf.capacity(), 0);
        assert_eq!(s.write_buf.capacity(), 0);
    }
}
