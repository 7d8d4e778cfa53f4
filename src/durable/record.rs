//! Record framing, format version 2: the bytes of one record and of a file
//! header, and how to check them.
//!
//! ```text
//! file header (20 bytes): magic: 4 | version: u32 | first_seq: u64 | crc: u32
//! record header (24 bytes): sync: 4 | len: u32 | seq: u64 | kind: u8
//!                           | version: u8 | flags: u16 (0) | crc: u32
//! then `len` payload bytes
//! ```
//!
//! Numbers are little-endian. A record's `crc` is CRC-32C over the payload
//! followed by the first 20 header bytes: the sync mark, the length and
//! the sequence number are covered, so a zero-filled region never reads as a
//! record, and a reader resyncing past damage does not take payload bytes
//! for a record header unless they also carry a matching checksum (and a
//! sequence number it expects). The payload comes first so that its
//! checksum, computed outside the log's lock, is extended by the 20 header
//! bytes once the sequence number is known (combining a checksum of the
//! header with one of a payload after it costs far more). A file header's
//! `crc` covers its first 16 bytes.
//!
//! `kind` says which client a record belongs to ([`KIND_COMMIT`] is the
//! engine's own); `version` is the client's payload version for that kind,
//! so a client can add payload versions (native histograms, exemplars)
//! without a new file format.

use std::ops::RangeInclusive;

/// The format version in every file header.
pub const FORMAT_VERSION: u32 = 2;
pub const FILE_HEADER_LEN: usize = 20;
pub const HEADER_LEN: usize = 24;
/// Starts every record header; not valid UTF-8, unlikely in text payloads.
pub const SYNC: [u8; 4] = [0xD7, b'P', b'K', b'R'];
/// Larger payloads are refused on append and read as damage: a damaged
/// length must not make a reader believe in a huge record.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// The engine's commit marker: closes a group commit. Its `seq` is the
/// group's last record; its payload is the group's first (`u64`).
pub const KIND_COMMIT: u8 = 0;
/// A store mutation (`store::record`).
pub const KIND_STORE: u8 = 1;
/// A push's points for the sinks (`sink::disk`).
pub const KIND_QUEUE: u8 = 2;
/// A snapshot's first record: the id of the log its cut refers to.
pub const KIND_SNAPSHOT_META: u8 = 3;

/// Magic of a log segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"PKL2";
/// Magic of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"PKS2";

pub fn crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// A file header.
pub fn file_header(magic: [u8; 4], first_seq: u64) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..4].copy_from_slice(&magic);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    let c = crc(&h[..16]);
    h[16..].copy_from_slice(&c.to_le_bytes());
    h
}

/// What the start of a file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHeader {
    /// A valid header of this magic and version; its `first_seq`.
    Valid(u64),
    /// Shorter than a header and all zeros or a prefix of the magic: the
    /// process died creating the file, before it could hold a record.
    Creating,
    /// Anything else.
    Bad(&'static str),
}

pub fn check_file_header(data: &[u8], magic: [u8; 4]) -> FileHeader {
    if data.len() < FILE_HEADER_LEN {
        let n = data.len().min(4);
        return if data[..n] == magic[..n] {
            FileHeader::Creating
        } else {
            FileHeader::Bad("truncated header")
        };
    }
    if data[..4] != magic {
        return FileHeader::Bad("bad magic");
    }
    if le_u32(&data[4..]) != FORMAT_VERSION {
        return FileHeader::Bad("unknown format version");
    }
    if crc(&data[..16]) != le_u32(&data[16..]) {
        return FileHeader::Bad("header checksum mismatch");
    }
    FileHeader::Valid(le_u64(&data[8..]))
}

/// A payload ready to append: its checksum is computed by
/// [`Payload::new`], before the writer's lock is taken.
#[derive(Debug)]
pub struct Payload {
    pub kind: u8,
    pub version: u8,
    pub bytes: Vec<u8>,
    crc: u32,
}

impl Payload {
    pub fn new(kind: u8, version: u8, bytes: Vec<u8>) -> Payload {
        let crc = crc(&bytes);
        Payload {
            kind,
            version,
            bytes,
            crc,
        }
    }

    /// Bytes on disk: header and payload.
    pub fn frame_len(&self) -> u64 {
        (HEADER_LEN + self.bytes.len()) as u64
    }

    /// The record header once the sequence number is known: cheap (the
    /// payload's checksum is extended by the header, not recomputed).
    pub fn header(&self, seq: u64) -> [u8; HEADER_LEN] {
        header(seq, self.kind, self.version, self.bytes.len(), self.crc)
    }
}

fn header(seq: u64, kind: u8, version: u8, len: usize, payload_crc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&SYNC);
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16] = kind;
    h[17] = version;
    let c = crc32c::crc32c_append(payload_crc, &h[..20]);
    h[20..].copy_from_slice(&c.to_le_bytes());
    h
}

/// A whole record (header and payload), e.g. a commit marker.
pub fn frame(seq: u64, kind: u8, version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(seq, kind, version, payload.len(), crc(payload)).to_vec();
    out.extend_from_slice(payload);
    out
}

/// The commit marker of a group `first..=last`.
pub fn commit_marker(first: u64, last: u64) -> Vec<u8> {
    frame(last, KIND_COMMIT, 0, &first.to_le_bytes())
}

/// A valid record at the start of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub seq: u64,
    pub kind: u8,
    pub version: u8,
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Bytes on disk.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// For a commit marker: the first sequence number of its group.
    pub fn commit_first(&self) -> Option<u64> {
        (self.kind == KIND_COMMIT && self.payload.len() == 8).then(|| le_u64(self.payload))
    }
}

const PAYLOAD_LENS: RangeInclusive<usize> = 0..=MAX_PAYLOAD;

/// Checks the record at the start of `data`; says why it is not one.
pub fn parse(data: &[u8]) -> Result<Frame<'_>, &'static str> {
    if data.len() < HEADER_LEN {
        return Err("truncated record header");
    }
    if data[..4] != SYNC {
        return Err("no record header");
    }
    let len = le_u32(&data[4..]) as usize;
    if !PAYLOAD_LENS.contains(&len) {
        return Err("record length out of range");
    }
    if data[18..20] != [0, 0] {
        return Err("unknown record flags");
    }
    if data.len() - HEADER_LEN < len {
        return Err("truncated record");
    }
    let payload = &data[HEADER_LEN..HEADER_LEN + len];
    let c = crc32c::crc32c_append(crc(payload), &data[..20]);
    if c != le_u32(&data[20..]) {
        return Err("checksum mismatch");
    }
    Ok(Frame {
        seq: le_u64(&data[8..]),
        kind: data[16],
        version: data[17],
        payload,
    })
}

/// The first offset after `from` in `data` where a valid record starts
/// whose sequence number passes `accept`: where a reader resumes after
/// damage.
pub fn resync(data: &[u8], from: usize, accept: impl Fn(u64) -> bool) -> Option<usize> {
    let mut at = from + 1;
    while at + HEADER_LEN <= data.len() {
        let rest = &data[at..];
        let next = rest.windows(4).position(|w| w == SYNC)?;
        at += next;
        if let Ok(f) = parse(&data[at..]) {
            if accept(f.seq) {
                return Some(at);
            }
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_crc32c() {
        assert_eq!(crc(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn records_round_trip() {
        let p = Payload::new(KIND_STORE, 3, b"hello".to_vec());
        let mut bytes = p.header(42).to_vec();
        bytes.extend_from_slice(&p.bytes);
        assert_eq!(bytes, frame(42, KIND_STORE, 3, b"hello"));
        assert_eq!(p.frame_len(), bytes.len() as u64);
        let f = parse(&bytes).unwrap();
        assert_eq!(
            (f.seq, f.kind, f.version, f.payload),
            (42, KIND_STORE, 3, &b"hello"[..])
        );
        assert_eq!(f.frame_len(), bytes.len());
        // Trailing bytes belong to the next record.
        let two = [bytes.clone(), frame(43, KIND_QUEUE, 1, b"")].concat();
        assert_eq!(parse(&two).unwrap().seq, 42);
        assert_eq!(parse(&two[bytes.len()..]).unwrap().payload, b"");
    }

    #[test]
    fn damage_is_named() {
        let f = frame(7, KIND_STORE, 1, b"payload");
        assert_eq!(parse(&f[..23]), Err("truncated record header"));
        assert_eq!(parse(&f[..28]), Err("truncated record"));
        assert_eq!(parse(&[0u8; 64]), Err("no record header"));
        for i in 0..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x10;
            assert!(parse(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        let mut long = f.clone();
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&long), Err("record length out of range"));
    }

    #[test]
    fn resync_skips_payload_that_looks_like_a_header() {
        // A payload carrying the sync mark and a bogus header is not a
        // record; the valid record after the damage is found.
        let mut payload = SYNC.to_vec();
        payload.extend_from_slice(&[5, 0, 0, 0]);
        payload.extend_from_slice(&[0u8; 30]);
        let first = frame(1, KIND_QUEUE, 1, &payload);
        let second = frame(2, KIND_QUEUE, 1, b"two");
        let mut data = [first.clone(), second].concat();
        data[6] ^= 1; // damage the first record's length
        assert!(parse(&data).is_err());
        assert_eq!(resync(&data, 0, |s| s > 0), Some(first.len()));
        // The sequence number must be one the reader expects.
        assert_eq!(resync(&data, 0, |s| s > 2), None);
        // Even a whole record inside a payload is refused by its number.
        let inner = frame(9, KIND_STORE, 1, b"x");
        let outer = frame(3, KIND_STORE, 1, &inner);
        let mut data = outer.clone();
        data[10] ^= 1;
        assert_eq!(resync(&data, 0, |s| s == 3 || s == 4), None);
    }

    #[test]
    fn file_headers() {
        let h = file_header(SEGMENT_MAGIC, 77);
        assert_eq!(check_file_header(&h, SEGMENT_MAGIC), FileHeader::Valid(77));
        assert_eq!(
            check_file_header(&[&h[..], b"more"].concat(), SEGMENT_MAGIC),
            FileHeader::Valid(77)
        );
        assert_eq!(check_file_header(b"", SEGMENT_MAGIC), FileHeader::Creating);
        assert_eq!(
            check_file_header(&h[..3], SEGMENT_MAGIC),
            FileHeader::Creating
        );
        assert_eq!(
            check_file_header(&h[..12], SEGMENT_MAGIC),
            FileHeader::Creating
        );
        assert!(matches!(
            check_file_header(&h, SNAPSHOT_MAGIC),
            FileHeader::Bad(_)
        ));
        let mut bad = h;
        bad[9] ^= 1;
        assert_eq!(
            check_file_header(&bad, SEGMENT_MAGIC),
            FileHeader::Bad("header checksum mismatch")
        );
        let mut v1 = h;
        v1[4] = 1;
        assert_eq!(
            check_file_header(&v1, SEGMENT_MAGIC),
            FileHeader::Bad("unknown format version")
        );
    }

    #[test]
    fn commit_markers() {
        let m = commit_marker(10, 14);
        let f = parse(&m).unwrap();
        assert_eq!(
            (f.kind, f.seq, f.commit_first()),
            (KIND_COMMIT, 14, Some(10))
        );
        assert_eq!(
            parse(&frame(3, KIND_STORE, 1, &[0; 8]))
                .unwrap()
                .commit_first(),
            None
        );
    }
}
