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

use bytes::{Bytes, BytesMut};

/// A buffer with size limit. When the total amount of data written to the buffer is below the limit
/// all the data will be held in the buffer. Otherwise, the buffer will report to be truncated.
///
/// Written pieces are copied in. A buffer made by [`FixedBuffer::shared`] instead keeps the
/// caller's [`Bytes`] (a reference, no copy), and [`FixedBuffer::get_buffer`] hands out
/// references to it.
pub struct FixedBuffer {
    buffer: Buffered,
    capacity: usize,
    truncated: bool,
}

/// What a [`FixedBuffer`] holds.
enum Buffered {
    Copied(BytesMut),
    Shared(Bytes),
}

impl Buffered {
    fn len(&self) -> usize {
        match self {
            Buffered::Copied(b) => b.len(),
            Buffered::Shared(b) => b.len(),
        }
    }
}

impl FixedBuffer {
    pub fn new(capacity: usize) -> Self {
        FixedBuffer {
            buffer: Buffered::Copied(BytesMut::new()),
            capacity,
            truncated: false,
        }
    }

    /// A buffer holding `data` itself (not a copy); more than `capacity` bytes make it
    /// truncated, as writing them would.
    pub fn shared(capacity: usize, data: &Bytes) -> Self {
        if data.len() > capacity {
            let mut truncated = FixedBuffer::new(capacity);
            truncated.truncated = true;
            return truncated;
        }
        FixedBuffer {
            buffer: Buffered::Shared(data.clone()),
            capacity,
            truncated: false,
        }
    }

    // TODO: maybe store a Vec of Bytes for zero-copy
    pub fn write_to_buffer(&mut self, data: &Bytes) {
        if self.truncated {
            return;
        }

        if self.buffer.len() + data.len() <= self.capacity {
            match &mut self.buffer {
                Buffered::Copied(buffer) => buffer.extend_from_slice(data),
                Buffered::Shared(shared) => {
                    let mut buffer = BytesMut::with_capacity(shared.len() + data.len());
                    buffer.extend_from_slice(shared);
                    buffer.extend_from_slice(data);
                    self.buffer = Buffered::Copied(buffer);
                }
            }
        } else {
            // Buffered data is no longer usable for a retry, so release its allocation.
            self.buffer = Buffered::Copied(BytesMut::new());
            self.truncated = true;
        }
    }

    pub fn clear(&mut self) {
        self.truncated = false;
        match &mut self.buffer {
            Buffered::Copied(buffer) => buffer.clear(),
            Buffered::Shared(_) => self.buffer = Buffered::Copied(BytesMut::new()),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.buffer.len() == 0
    }
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
    pub fn get_buffer(&self) -> Option<Bytes> {
        // TODO: return None if truncated?
        if self.is_empty() {
            return None;
        }
        match &self.buffer {
            Buffered::Copied(buffer) => Some(buffer.clone().freeze()),
            Buffered::Shared(shared) => Some(shared.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_storage_when_truncated() {
        let mut buffer = FixedBuffer::new(4);
        buffer.write_to_buffer(&Bytes::from_static(b"1234"));
        assert!(matches!(&buffer.buffer, Buffered::Copied(b) if b.capacity() >= 4));

        buffer.write_to_buffer(&Bytes::from_static(b"5"));

        assert!(buffer.is_truncated());
        assert!(matches!(&buffer.buffer, Buffered::Copied(b) if b.capacity() == 0));
        assert!(buffer.get_buffer().is_none());
    }

    #[test]
    fn a_shared_buffer_hands_out_the_callers_bytes() {
        let body = Bytes::from(vec![7u8; 100]);
        let buffer = FixedBuffer::shared(100, &body);
        let got = buffer.get_buffer().unwrap();
        assert_eq!(got.as_ptr(), body.as_ptr());
        assert_eq!(got, body);

        // written to, it copies and goes on as before
        let mut buffer = FixedBuffer::shared(101, &body);
        buffer.write_to_buffer(&Bytes::from_static(b"8"));
        let got = buffer.get_buffer().unwrap();
        assert_eq!(got.len(), 101);
        assert_ne!(got.as_ptr(), body.as_ptr());

        // over the capacity: truncated, nothing held
        let buffer = FixedBuffer::shared(99, &body);
        assert!(buffer.is_truncated());
        assert!(buffer.get_buffer().is_none());

        // empty: nothing to hand out
        assert!(FixedBuffer::shared(99, &Bytes::new())
            .get_buffer()
            .is_none());
    }
}
