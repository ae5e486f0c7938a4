//! The protobuf wire format, read only: varints, fixed 32/64-bit values and length-delimited
//! bytes, each behind a field number.

use super::ProtobufError;

/// One field value as it travels.
#[derive(Debug, Clone, Copy)]
pub enum Wire<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages, packed lists.
    Bytes(&'a [u8]),
    /// Wire type 5 (no Kubernetes field uses it; read past).
    Fixed32,
}

impl Wire<'_> {
    /// The wire type number, for errors.
    pub fn type_number(&self) -> u8 {
        match self {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Bytes(_) => 2,
            Wire::Fixed32 => 5,
        }
    }
}

/// Reads fields from one message's bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over one message.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Whether every byte has been read.
    pub fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The next field, or `None` at the end. `at` names the message in errors.
    pub fn next(&mut self, at: &str) -> Result<Option<(u32, Wire<'a>)>, ProtobufError> {
        if self.done() {
            return Ok(None);
        }
        let key = self.varint(at)?;
        let tag = u32::try_from(key >> 3).map_err(|_| truncated(at))?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint(at)?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take_array(at)?)),
            2 => {
                let len = usize::try_from(self.varint(at)?).map_err(|_| truncated(at))?;
                Wire::Bytes(self.take(len, at)?)
            }
            5 => {
                self.take(4, at)?;
                Wire::Fixed32
            }
            wire => {
                // Groups (3, 4) and the unused 6, 7: nothing in Kubernetes sends them.
                return Err(ProtobufError::WireType {
                    at: at.to_owned(),
                    tag,
                    wire: wire as u8,
                });
            }
        };
        Ok(Some((tag, value)))
    }

    /// One base-128 varint.
    pub fn varint(&mut self, at: &str) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or_else(|| truncated(at))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(truncated(at))
    }

    fn take(&mut self, len: usize, at: &str) -> Result<&'a [u8], ProtobufError> {
        let end = self.pos.checked_add(len).ok_or_else(|| truncated(at))?;
        let slice = self.bytes.get(self.pos..end).ok_or_else(|| truncated(at))?;
        self.pos = end;
        Ok(slice)
    }

    fn take_array<const N: usize>(&mut self, at: &str) -> Result<[u8; N], ProtobufError> {
        let slice = self.take(N, at)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

fn truncated(at: &str) -> ProtobufError {
    ProtobufError::Truncated { at: at.to_owned() }
}
