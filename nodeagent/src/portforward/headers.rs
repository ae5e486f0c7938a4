//! SPDY/3 header blocks: a count, then length-prefixed names and values, compressed with
//! zlib primed with the dictionary of the SPDY/3 specification. Each direction of a
//! connection is one zlib stream across all its header blocks (each block ends with a sync
//! flush), so a connection keeps one [`HeaderCodec`] and passes every block through it in
//! order, the ones it ignores included.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::PortForwardError;

/// The SPDY/3 header compression dictionary (1,423 bytes, zlib dictionary id 0xe3c6a7c2).
pub const DICTIONARY: &[u8] = include_bytes!("spdy3.dict");

/// The most a header block may inflate to (a port-forward's blocks hold three short headers).
const MAX_BLOCK: usize = 256 * 1024;

/// The header compression state of one connection.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl std::fmt::Debug for HeaderCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCodec").finish_non_exhaustive()
    }
}

fn broken(what: &str, e: impl std::fmt::Display) -> PortForwardError {
    PortForwardError::Protocol(format!("a header block {what}: {e}"))
}

impl HeaderCodec {
    /// A fresh codec for a new connection.
    pub fn new() -> Result<HeaderCodec, PortForwardError> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .map_err(|e| broken("compressor cannot take the dictionary", e))?;
        Ok(HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
        })
    }

    /// Inflates and parses one header block: its (name, value) pairs, names lower case.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, PortForwardError> {
        let plain = self.inflate(block)?;
        parse(plain)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Bytes, PortForwardError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_BLOCK {
                    return Err(PortForwardError::Protocol(format!(
                        "a header block inflates to more than {MAX_BLOCK} bytes"
                    )));
                }
                out.reserve(out.capacity().max(256));
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = usize::try_from(self.inflate.total_in() - before_in).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            let produced = self.inflate.total_out() != before_out;
            match result {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(_) => {
                        self.inflate
                            .set_dictionary(DICTIONARY)
                            .map_err(|e| broken("names a dictionary that is not SPDY/3's", e))?;
                        continue;
                    }
                    None => return Err(broken("is not valid zlib", e)),
                },
            }
            // All input taken and the output not full: the block is complete.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if used == 0 && !produced && out.len() < out.capacity() {
                return Err(PortForwardError::Protocol(
                    "a header block stops making progress".into(),
                ));
            }
        }
        Ok(Bytes::from(out))
    }

    /// Serializes and compresses `headers` as one block.
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Bytes, PortForwardError> {
        let mut plain = BytesMut::new();
        plain.put_u32(headers.len() as u32);
        for (name, value) in headers {
            plain.put_u32(name.len() as u32);
            plain.put_slice(name.to_ascii_lowercase().as_bytes());
            plain.put_u32(value.len() as u32);
            plain.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = &plain[..];
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| broken("cannot be compressed", e))?;
            let used = usize::try_from(self.deflate.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            // A sync flush is complete when it had room to spare.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(Bytes::from(out))
    }
}

fn parse(mut plain: Bytes) -> Result<Vec<(String, String)>, PortForwardError> {
    fn take(plain: &mut Bytes) -> Result<String, PortForwardError> {
        if plain.remaining() < 4 {
            return Err(PortForwardError::Protocol(
                "a header block is cut short".into(),
            ));
        }
        let length = plain.get_u32() as usize;
        if plain.remaining() < length {
            return Err(PortForwardError::Protocol(
                "a header block is cut short".into(),
            ));
        }
        let text = plain.split_to(length);
        String::from_utf8(text.to_vec())
            .map_err(|_| PortForwardError::Protocol("a header is not UTF-8".into()))
    }
    if plain.remaining() < 4 {
        return Err(PortForwardError::Protocol(
            "a header block is cut short".into(),
        ));
    }
    let count = plain.get_u32() as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take(&mut plain)?.to_ascii_lowercase();
        let value = take(&mut plain)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// The first value of header `name` (SPDY joins repeated values with NUL).
pub fn value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.split('\0').next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for byte in DICTIONARY {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(
            (b << 16) | a,
            0xe3c6_a7c2,
            "the Adler-32 id of the SPDY/3 dictionary"
        );
    }

    #[test]
    fn blocks_round_trip_across_one_stream() {
        let mut sender = HeaderCodec::new().expect("codec");
        let mut receiver = HeaderCodec::new().expect("codec");
        for id in 0..5 {
            let request = id.to_string();
            let block = sender
                .encode(&[
                    ("streamType", "data"),
                    ("port", "8080"),
                    ("requestID", &request),
                ])
                .expect("encodes");
            let headers = receiver.decode(&block).expect("decodes");
            assert_eq!(value(&headers, "streamtype"), Some("data"));
            assert_eq!(value(&headers, "port"), Some("8080"));
            assert_eq!(value(&headers, "requestid"), Some(request.as_str()));
        }
        let empty = sender.encode(&[]).expect("encodes");
        assert!(receiver.decode(&empty).expect("decodes").is_empty());
    }

    #[test]
    fn the_first_block_names_the_dictionary() {
        let mut sender = HeaderCodec::new().expect("codec");
        let block = sender.encode(&[("port", "80")]).expect("encodes");
        assert_eq!(block[0] & 0x0f, 8, "deflate");
        assert_ne!(block[1] & 0x20, 0, "FDICT is set");
        assert_eq!(&block[2..6], &0xe3c6_a7c2u32.to_be_bytes());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut receiver = HeaderCodec::new().expect("codec");
        assert!(receiver.decode(b"\x00\x01\x02\x03\x04").is_err());
        let mut receiver = HeaderCodec::new().expect("codec");
        let mut sender = HeaderCodec::new().expect("codec");
        let block = sender.encode(&[("port", "80")]).expect("encodes");
        assert!(receiver.decode(&block[..block.len() / 2]).is_err());
    }
}
