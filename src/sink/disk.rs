//! The sinks' disk-backed queue, used when `[io] queue_dir` is set. One
//! queue per agent, shared by every sink: a push is written once, to
//! segment files, and fsynced before it is acknowledged; each sink reads it
//! back at its own pace through its own cursor. Memory holds an index of
//! the records not yet acknowledged by every sink (about 100 bytes per
//! record, i.e. per push) and a bounded cache of recent record bodies
//! (16 MiB); other points are read back from the files (usually from the
//! page cache), never under the queue's lock.
//!
//! # Files
//!
//! All files live directly in the directory (created 0700 if missing) and
//! are created 0600:
//! - `segment-<seq>` (16 decimal digits): records, starting with record
//!   number `seq`. Only the newest segment is appended to; a new one is
//!   started when the current one would grow past `segment_bytes`, and at
//!   every open.
//! - `cursor-<sink>`: a sink's persisted cursor. The sink name is kept to
//!   ASCII letters, digits, `-` and `_`; every other byte is written `%XX`.
//! - `cursor-<sink>.tmp`: a cursor being replaced; removed at open.
//! - `*.corrupt-<unix time>`: a segment whose header is damaged, moved
//!   aside; never read, never deleted by this module.
//! - `LOCK`: held with an exclusive lock while a process has the queue
//!   open, so that two agents cannot interleave writes.
//!
//! A segment starts with an 8-byte header, the magic `PKQ1` and a
//! little-endian `u32` format version (1), followed by frames:
//!
//! ```text
//! frame:   len: u32 | crc: u32 | payload: len bytes
//! payload: version: u8 (1) | count: u32 | count × point | seq: u64 | append_time_ns: i64
//! point:   measurement: str | tags: u32 × (key: str, value: str)
//!          | fields: u32 × (key: str, value: f64, suffix: u8) | time_ns: i64
//!          | family: str | kind: u8
//! str:     len: u32 | UTF-8 bytes
//! ```
//!
//! Numbers are little-endian; `f64` is its IEEE bits. `suffix` is 0 none,
//! 1 `_count`, 2 `_sum`, 3 `_bucket`; `kind` is 0 counter, 1 gauge,
//! 2 summary, 3 untyped, 4 histogram, 5 gauge histogram. `crc` is CRC-32C
//! over the 4 length bytes followed by the payload, so that a zero-filled
//! region never reads as a record. `seq` numbers records from 1, one per
//! push, increasing by one; `append_time_ns` (Unix time) dates the record
//! for [`DiskQueue::oldest_age`]. The two fields known only under the
//! queue's lock come last, so that the checksum of the points is computed
//! before taking it.
//!
//! A cursor file is 20 bytes: `PKC1`, `seq: u64`, `point: u32`, and a
//! CRC-32C of those 16 bytes. It means: every record before `seq`, and the
//! first `point` points of record `seq`, are acknowledged by the sink.
//!
//! # Guarantees
//!
//! - A push is durable once [`DiskQueue::wait`] returns `Ok` for its
//!   ticket: its record was written and `fdatasync`ed, and its segment was
//!   fsynced into the directory when it was created. Acknowledge only then.
//!   One flusher thread writes whatever accumulated while the previous
//!   fsync ran and then fsyncs once (group commit).
//! - [`DiskQueue::append`] is all or nothing across sinks: if a sink with
//!   `drop_oldest = false` lacks room, nothing is written and no sink gets
//!   the push. Sinks with `drop_oldest` skip their own oldest records to
//!   make room and never refuse. A sink's budget counts the frame bytes of
//!   the records it has not acknowledged; a sink with nothing pending takes
//!   any push, however large. A down sink holds back no other sink, except
//!   by refusing pushes once its own budget is full.
//! - Delivery is at least once: a sink's cursor moves only when a batch is
//!   acknowledged ([`DiskQueue::ack`]), and is then persisted (tmp file,
//!   fsync, rename, directory fsync). After a crash, everything after the
//!   persisted cursor is delivered again; [`Opened::redelivered_points`]
//!   counts it. Cursors moved by `drop_oldest` are persisted by the flusher
//!   within about a second; a crash before that re-delivers dropped points,
//!   which at-least-once allows.
//! - A segment is deleted once every sink's persisted cursor has passed it
//!   (never the one being appended to). A sink no longer configured has
//!   its cursor file deleted at open and holds nothing back; a sink with no
//!   cursor file starts with the next push.
//! - A failed write or fsync fails every waiting and every later append:
//!   after a failed fsync the kernel may have dropped the dirty pages, so a
//!   retry could report durability that is not there. What was durable is
//!   still delivered; a restart clears the failure.
//!
//! # Recovery
//!
//! Segments are read in order. A record with a bad checksum (or length,
//! version or sequence number) whose length field still leads to a valid
//! record is skipped alone; otherwise the rest of the segment is skipped.
//! Either way the error names the file and how many records the sinks had
//! not yet acknowledged were lost, and later records and segments are still
//! delivered. In the newest segment, damage with nothing valid after it is
//! a write torn by a crash (never acknowledged): the file is truncated
//! there, with a warning. A segment with a damaged header is moved aside.
//! Nothing found on disk makes `open` fail; only I/O errors do.

use crate::durable::fsutil::{
    self, check_frame as check_frame_bytes, check_header, move_aside, sync_dir, Failure, Header,
    FILE_HEADER_LEN, FRAME_HEADER_LEN,
};
use crate::model::family::{LabelStr, MetricType};
use crate::model::point::{Field, Point, SeriesSuffix};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;

/// Segment size used by the agent (`open` takes it as a parameter, so that
/// tests can use tiny segments).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Larger pushes are refused; a larger length field reads as corruption.
pub const MAX_RECORD_LEN: usize = 256 << 20;

const SEGMENT_MAGIC: [u8; 4] = *b"PKQ1";
const CURSOR_MAGIC: [u8; 4] = *b"PKC1";
const FORMAT_VERSION: u32 = 1;
const RECORD_VERSION: u8 = 1;
/// `seq` and `append_time_ns` at the end of a payload.
const RECORD_TRAILER_LEN: usize = 16;
/// Version, count and trailer: the payload of a record with no points.
const MIN_PAYLOAD_LEN: usize = 1 + 4 + RECORD_TRAILER_LEN;
/// The smallest encoded point: empty strings, no tags, no fields.
const MIN_POINT_LEN: usize = 4 + 4 + 4 + 8 + 4 + 1;
const CURSOR_FILE_LEN: usize = 20;
/// Record bodies kept in memory for the workers, at most (frame bytes).
const CACHE_BYTES: u64 = 16 << 20;
/// Larger records are never cached.
const CACHE_MAX_RECORD: u64 = CACHE_BYTES / 8;
/// The flusher writes through a buffer of this size.
const WRITE_BUFFER: usize = 1 << 20;
/// How often the flusher persists cursors moved by `drop_oldest`.
const CURSOR_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Sequence number of the first record in an empty directory; ticket 0 is
/// always durable.
const FIRST_SEQ: u64 = 1;
const SEGMENT_PREFIX: &str = "segment-";
const CURSOR_PREFIX: &str = "cursor-";

// ---------------------------------------------------------------------------
// Record encoding.

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Longer strings cannot fit a record anyway; `append` refuses them.
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s.as_bytes());
}

fn suffix_code(s: SeriesSuffix) -> u8 {
    match s {
        SeriesSuffix::None => 0,
        SeriesSuffix::Count => 1,
        SeriesSuffix::Sum => 2,
        SeriesSuffix::Bucket => 3,
    }
}

fn suffix_from_code(c: u8) -> Option<SeriesSuffix> {
    Some(match c {
        0 => SeriesSuffix::None,
        1 => SeriesSuffix::Count,
        2 => SeriesSuffix::Sum,
        3 => SeriesSuffix::Bucket,
        _ => return None,
    })
}

fn kind_code(k: MetricType) -> u8 {
    match k {
        MetricType::Counter => 0,
        MetricType::Gauge => 1,
        MetricType::Summary => 2,
        MetricType::Untyped => 3,
        MetricType::Histogram => 4,
        MetricType::GaugeHistogram => 5,
    }
}

fn kind_from_code(c: u8) -> Option<MetricType> {
    Some(match c {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Summary,
        3 => MetricType::Untyped,
        4 => MetricType::Histogram,
        5 => MetricType::GaugeHistogram,
        _ => return None,
    })
}

/// Appends a record body (the payload without its trailer): version,
/// point count, points.
fn encode_body(points: &[Point], out: &mut Vec<u8>) {
    out.push(RECORD_VERSION);
    put_u32(out, u32::try_from(points.len()).unwrap_or(u32::MAX));
    for p in points {
        put_str(out, &p.measurement);
        put_u32(out, u32::try_from(p.tags.len()).unwrap_or(u32::MAX));
        for (k, v) in &p.tags {
            put_str(out, k);
            put_str(out, v);
        }
        put_u32(out, u32::try_from(p.fields.len()).unwrap_or(u32::MAX));
        for f in &p.fields {
            put_str(out, &f.key);
            out.extend_from_slice(&f.value.to_bits().to_le_bytes());
            out.push(suffix_code(f.suffix));
        }
        out.extend_from_slice(&p.time_ns.to_le_bytes());
        put_str(out, &p.family);
        out.push(kind_code(p.kind));
    }
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() - self.pos < n {
            return Err(format!("record body truncated at byte {}", self.pos));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array()?)))
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| format!("invalid UTF-8 before byte {}", self.pos))
    }

    /// A count of items each at least `min_len` bytes long: checked against
    /// what is left, so that a bad count cannot cause a huge allocation.
    fn count(&mut self, min_len: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_len) > self.data.len() - self.pos {
            return Err(format!("count {n} exceeds the record at byte {}", self.pos));
        }
        Ok(n)
    }
}

/// Decodes a record body written by [`encode_body`].
fn decode_body(body: &[u8]) -> Result<Vec<Point>, String> {
    let mut d = Decoder { data: body, pos: 0 };
    let version = d.u8()?;
    if version != RECORD_VERSION {
        return Err(format!("unknown record version {version}"));
    }
    let n = d.count(MIN_POINT_LEN)?;
    let mut points = Vec::with_capacity(n);
    // Points of one push mostly share their family: share the Arc too.
    let mut last_family: Option<Arc<str>> = None;
    for _ in 0..n {
        let measurement = LabelStr::from(d.str()?);
        let ntags = d.count(8)?;
        let mut tags = Vec::with_capacity(ntags);
        for _ in 0..ntags {
            let k = LabelStr::from(d.str()?);
            let v = LabelStr::from(d.str()?);
            tags.push((k, v));
        }
        let nfields = d.count(4 + 8 + 1)?;
        let mut fields = Vec::with_capacity(nfields);
        for _ in 0..nfields {
            let key = LabelStr::from(d.str()?);
            let value = d.f64()?;
            let code = d.u8()?;
            let suffix =
                suffix_from_code(code).ok_or_else(|| format!("unknown series suffix {code}"))?;
            fields.push(Field { key, value, suffix });
        }
        let time_ns = d.i64()?;
        let family_name = d.str()?;
        let family = match &last_family {
            Some(f) if &**f == family_name => f.clone(),
            _ => {
                let f: Arc<str> = Arc::from(family_name);
                last_family = Some(f.clone());
                f
            }
        };
        let code = d.u8()?;
        let kind = kind_from_code(code).ok_or_else(|| format!("unknown metric type {code}"))?;
        points.push(Point {
            measurement,
            tags,
            fields,
            time_ns,
            family,
            kind,
        });
    }
    if d.pos != body.len() {
        return Err(format!(
            "{} unexpected bytes after the points",
            body.len() - d.pos
        ));
    }
    Ok(points)
}

// ---------------------------------------------------------------------------
// Frames and segments.

fn file_header(magic: [u8; 4]) -> [u8; FILE_HEADER_LEN] {
    fsutil::file_header(magic, FORMAT_VERSION)
}

/// The payload lengths a valid frame can have.
const PAYLOAD_LENS: RangeInclusive<usize> = MIN_PAYLOAD_LEN..=MAX_RECORD_LEN;

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// What a valid frame says about its record.
#[derive(Debug, Clone, Copy)]
struct FrameInfo {
    seq: u64,
    append_ns: i64,
    points: u32,
    /// The whole frame, header included.
    len: usize,
}

/// Checks the frame at the start of `data`.
fn check_frame(data: &[u8]) -> Result<FrameInfo, &'static str> {
    let payload = check_frame_bytes(data, PAYLOAD_LENS)?;
    let len = payload.len();
    if payload[0] != RECORD_VERSION {
        return Err("unknown record version");
    }
    let trailer = &payload[len - RECORD_TRAILER_LEN..];
    Ok(FrameInfo {
        seq: le_u64(trailer),
        append_ns: le_u64(&trailer[8..]) as i64,
        points: le_u32(&payload[1..]),
        len: FRAME_HEADER_LEN + len,
    })
}

/// Records lost from a segment, `lost_from..lost_to` by sequence number.
struct Skip {
    offset: usize,
    why: &'static str,
    lost_from: u64,
    lost_to: u64,
}

struct Parsed {
    /// Valid records: file offset and frame.
    recs: Vec<(u64, FrameInfo)>,
    /// Damaged records skipped alone.
    skips: Vec<Skip>,
    /// Where reading stopped early, and why.
    stop: Option<(usize, &'static str)>,
    /// Sequence number of the record expected after the last valid one.
    next_expected: u64,
}

enum SegmentParse {
    /// Only a prefix of the header: crashed while being created, before it
    /// could hold a record.
    Creating,
    BadHeader,
    Parsed(Parsed),
}

/// Reads a segment named `first_seq`; records must number up from it and
/// stay below `limit` (the next segment's name).
fn parse_segment(data: &[u8], first_seq: u64, limit: Option<u64>) -> SegmentParse {
    match check_header(data, &file_header(SEGMENT_MAGIC)) {
        Header::Creating => return SegmentParse::Creating,
        Header::Bad => return SegmentParse::BadHeader,
        Header::Valid => {}
    }
    let in_range = |seq: u64| limit.is_none_or(|l| seq < l);
    let mut p = Parsed {
        recs: Vec::new(),
        skips: Vec::new(),
        stop: None,
        next_expected: first_seq,
    };
    let mut pos = FILE_HEADER_LEN;
    while pos < data.len() {
        let why = match check_frame(&data[pos..]) {
            Ok(f) if f.seq == p.next_expected && in_range(f.seq) => {
                p.recs.push((pos as u64, f));
                p.next_expected += 1;
                pos += f.len;
                continue;
            }
            Ok(_) => "unexpected sequence number",
            Err(why) => why,
        };
        // A damaged record whose length survived: if a valid record
        // follows it, lose only this one.
        if let Some(next) = fsutil::frame_after_bad(&data[pos..], PAYLOAD_LENS) {
            if let Ok(f) = check_frame(&data[pos + next..]) {
                if f.seq > p.next_expected && in_range(f.seq) {
                    p.skips.push(Skip {
                        offset: pos,
                        why,
                        lost_from: p.next_expected,
                        lost_to: f.seq,
                    });
                    p.next_expected = f.seq;
                    pos += next;
                    continue;
                }
            }
        }
        p.stop = Some((pos, why));
        break;
    }
    SegmentParse::Parsed(p)
}

fn segment_name(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{seq:016}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    fsutil::parse_numbered(name, SEGMENT_PREFIX)
}

/// Creates `segment-<seq>` with its header, durable in the directory before
/// any record in it can be acknowledged. Opened for reading too: workers
/// read records back through the same descriptor.
fn create_segment(dir: &Path, seq: u64) -> io::Result<File> {
    fsutil::create_with_header(dir, &segment_name(seq), &file_header(SEGMENT_MAGIC))
}

// ---------------------------------------------------------------------------
// Cursor files.

/// A position in the queue: the next point to deliver is point `point` of
/// record `seq`. Kept normalized: `seq` is a record in the index with
/// `point` below its count, or the end (`next_seq`, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Pos {
    seq: u64,
    point: u32,
}

fn encode_sink_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_sink_name(enc: &str) -> Option<String> {
    let b = enc.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'_' {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

fn cursor_name(sink: &str) -> String {
    format!("{CURSOR_PREFIX}{}", encode_sink_name(sink))
}

fn read_cursor(path: &Path) -> Result<Pos, String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    if data.len() != CURSOR_FILE_LEN {
        return Err(format!("{} bytes, expected {CURSOR_FILE_LEN}", data.len()));
    }
    if data[..4] != CURSOR_MAGIC {
        return Err("bad magic".into());
    }
    if crc32c::crc32c(&data[..16]) != le_u32(&data[16..]) {
        return Err("checksum mismatch".into());
    }
    Ok(Pos {
        seq: le_u64(&data[4..]),
        point: le_u32(&data[12..]),
    })
}

/// Replaces a sink's cursor file atomically: tmp file, fsync, rename,
/// directory fsync.
fn write_cursor(dir: &Path, sink: &str, pos: Pos) -> io::Result<()> {
    let name = cursor_name(sink);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut buf = [0u8; CURSOR_FILE_LEN];
    buf[..4].copy_from_slice(&CURSOR_MAGIC);
    buf[4..12].copy_from_slice(&pos.seq.to_le_bytes());
    buf[12..16].copy_from_slice(&pos.point.to_le_bytes());
    let crc = crc32c::crc32c(&buf[..16]);
    buf[16..].copy_from_slice(&crc.to_le_bytes());
    let mut file = fsutil::create_private(&tmp)?;
    file.write_all(&buf)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, &path)?;
    sync_dir(dir)
}

// ---------------------------------------------------------------------------
// File helpers.

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is consistent at every unlock; a panic elsewhere is
    // no reason to stop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records damage found at open: logged as an error and returned.
fn note_error(warnings: &mut Vec<String>, msg: String) {
    tracing::error!("{msg}");
    warnings.push(msg);
}

fn note_warn(warnings: &mut Vec<String>, msg: String) {
    tracing::warn!("{msg}");
    warnings.push(msg);
}

fn records(n: u64) -> String {
    if n == 1 {
        "1 record".into()
    } else {
        format!("{n} records")
    }
}

// ---------------------------------------------------------------------------
// Shared state.

/// One record not yet acknowledged by every sink.
struct Rec {
    seq: u64,
    /// Name (first sequence number) of its segment.
    segment: u64,
    /// Offset of its frame in the segment file.
    offset: u64,
    /// Frame length, header included: what budgets count.
    len: u64,
    points: u32,
    append_ns: i64,
    /// Points and bytes of all records before this one since open, so that
    /// the amount between two positions is a subtraction.
    cum_points: u64,
    cum_bytes: u64,
    /// The record body, while cached.
    body: Option<Arc<[u8]>>,
}

struct Segment {
    path: PathBuf,
    /// Set once the file exists.
    file: Option<Arc<File>>,
}

struct SinkState {
    name: String,
    max_bytes: u64,
    drop_oldest: bool,
    /// Everything before is acknowledged (or dropped).
    acked: Pos,
    /// The next point to hand out; `acked..read` is in flight (up to
    /// `inflight_end`) or dropped (after it).
    read: Pos,
    /// End of the last batch handed out and not yet acknowledged.
    inflight_end: Option<Pos>,
    /// What the cursor file says.
    persisted: Pos,
}

enum Op {
    /// A frame for the current segment.
    Frame(Vec<u8>),
    /// Make the current segment durable, then continue in `segment-<seq>`.
    Rotate(u64),
}

struct State {
    /// Records from the oldest any sink has not acknowledged, in order.
    index: VecDeque<Rec>,
    /// Points and bytes of every record since open (the `cum_*` of the end).
    total_points: u64,
    total_bytes: u64,
    next_seq: u64,
    /// Records up to this sequence number are on disk.
    durable: u64,
    segments: BTreeMap<u64, Segment>,
    /// Bytes of the segment being appended to, pending frames included.
    active_bytes: u64,
    /// Work for the flusher, in order.
    ops: Vec<Op>,
    sinks: Vec<SinkState>,
    /// Sequence numbers of cached records, oldest first.
    cache_order: VecDeque<u64>,
    cache_bytes: u64,
    closing: bool,
    failed: Option<Failure>,
}

impl State {
    fn end(&self) -> Pos {
        Pos {
            seq: self.next_seq,
            point: 0,
        }
    }

    fn find(&self, seq: u64) -> Result<usize, usize> {
        self.index.binary_search_by_key(&seq, |r| r.seq)
    }

    /// The record a position is in and the point in it, or `None` at the end.
    fn locate(&self, p: Pos) -> Option<(usize, u32)> {
        match self.find(p.seq) {
            Ok(i) if p.point < self.index[i].points => Some((i, p.point)),
            Ok(i) => self.locate(self.pos_at(i + 1)),
            Err(i) if i < self.index.len() => Some((i, 0)),
            Err(_) => None,
        }
    }

    /// The start of the `i`-th indexed record, or the end.
    fn pos_at(&self, i: usize) -> Pos {
        match self.index.get(i) {
            Some(r) => Pos {
                seq: r.seq,
                point: 0,
            },
            None => self.end(),
        }
    }

    fn normalize(&self, p: Pos) -> Pos {
        if p.seq >= self.next_seq {
            return self.end();
        }
        match self.locate(p) {
            Some((i, point)) => Pos {
                seq: self.index[i].seq,
                point,
            },
            None => self.end(),
        }
    }

    /// Points before `p` since open.
    fn points_at(&self, p: Pos) -> u64 {
        match self.locate(p) {
            Some((i, point)) => self.index[i].cum_points + point as u64,
            None => self.total_points,
        }
    }

    /// Bytes of the records wholly before `p`.
    fn bytes_at(&self, p: Pos) -> u64 {
        match self.locate(p) {
            Some((i, _)) => self.index[i].cum_bytes,
            None => self.total_bytes,
        }
    }

    /// Bytes of the records before `p` and of the one `p` is inside: a
    /// record partly acknowledged (or in flight) still takes its space.
    fn bytes_through(&self, p: Pos) -> u64 {
        match self.locate(p) {
            Some((i, 0)) => self.index[i].cum_bytes,
            Some((i, _)) => self.index[i].cum_bytes + self.index[i].len,
            None => self.total_bytes,
        }
    }

    /// The position after the last durable record.
    fn durable_end(&self) -> Pos {
        self.normalize(Pos {
            seq: self.durable + 1,
            point: 0,
        })
    }

    /// What sink `s` has not acknowledged and not dropped: the batch in
    /// flight and what follows its read position.
    fn depth(&self, s: usize) -> (u64, u64) {
        let sk = &self.sinks[s];
        let e = sk.inflight_end.unwrap_or(sk.acked);
        let points = self.points_at(e).saturating_sub(self.points_at(sk.acked))
            + self.total_points.saturating_sub(self.points_at(sk.read));
        let bytes = self
            .bytes_through(e)
            .saturating_sub(self.bytes_at(sk.acked))
            + self.total_bytes.saturating_sub(self.bytes_through(sk.read));
        (points, bytes)
    }

    fn has_room(&self, s: usize, cost: u64) -> bool {
        let (_, bytes) = self.depth(s);
        bytes == 0 || bytes.saturating_add(cost) <= self.sinks[s].max_bytes
    }

    /// Skips sink `s`'s oldest records not in flight until `cost` more
    /// bytes fit. Returns the points dropped.
    fn drop_oldest(&mut self, s: usize, cost: u64) -> u64 {
        let mut dropped = 0;
        while !self.has_room(s, cost) {
            let Some((i, point)) = self.locate(self.sinks[s].read) else {
                break;
            };
            dropped += (self.index[i].points - point) as u64;
            let next = self.pos_at(i + 1);
            let sk = &mut self.sinks[s];
            sk.read = next;
            if sk.inflight_end.is_none() {
                sk.acked = next;
            }
        }
        dropped
    }

    /// Forgets records every sink has acknowledged.
    fn trim(&mut self) {
        let min = self
            .sinks
            .iter()
            .map(|s| s.acked.seq)
            .min()
            .unwrap_or(self.next_seq);
        while self.index.front().is_some_and(|r| r.seq < min) {
            let r = self.index.pop_front().expect("front exists");
            if r.body.is_some() {
                self.cache_bytes -= r.len;
            }
        }
        let first = self.index.front().map_or(self.next_seq, |r| r.seq);
        while self.cache_order.front().is_some_and(|&s| s < first) {
            self.cache_order.pop_front();
        }
    }

    fn evict(&mut self) {
        while self.cache_bytes > CACHE_BYTES {
            let Some(seq) = self.cache_order.pop_front() else {
                break;
            };
            if let Ok(i) = self.find(seq) {
                if self.index[i].body.take().is_some() {
                    self.cache_bytes -= self.index[i].len;
                }
            }
        }
    }

    /// Up to `max_points` durable points for sink `s` from its read
    /// position, and the position after them. Changes nothing: the caller
    /// commits with [`State::commit`] once it has the points.
    fn plan(&self, s: usize, max_points: u64) -> (Vec<Item>, Pos) {
        let mut items = Vec::new();
        let mut pos = self.sinks[s].read;
        let mut want = max_points;
        if let Some((mut i, mut from)) = self.locate(pos) {
            while want > 0 && i < self.index.len() && self.index[i].seq <= self.durable {
                let r = &self.index[i];
                let n = ((r.points - from) as u64).min(want) as u32;
                if n > 0 {
                    let src = match &r.body {
                        Some(body) => Source::Cached(body.clone()),
                        None => {
                            let seg = self.segments.get(&r.segment);
                            Source::Disk {
                                file: seg.and_then(|s| s.file.clone()),
                                path: seg.map(|s| s.path.clone()).unwrap_or_default(),
                                offset: r.offset,
                                len: r.len,
                            }
                        }
                    };
                    items.push(Item {
                        seq: r.seq,
                        from,
                        to: from + n,
                        src,
                    });
                    want -= n as u64;
                }
                if from + n >= r.points {
                    i += 1;
                    from = 0;
                    pos = self.pos_at(i);
                } else {
                    from += n;
                    pos = Pos {
                        seq: r.seq,
                        point: from,
                    };
                }
            }
        }
        (items, pos)
    }

    /// Hands out the batch `start..end` planned for sink `s`, unless the
    /// sink's read position moved meanwhile (points dropped, or another
    /// call took them); then the caller plans again.
    fn commit(&mut self, s: usize, start: Pos, end: Pos) -> bool {
        let sk = &mut self.sinks[s];
        if sk.read != start {
            return false;
        }
        sk.read = end;
        sk.inflight_end = Some(end);
        true
    }
}

/// Points of one record for a batch, and where to get them.
struct Item {
    seq: u64,
    from: u32,
    to: u32,
    src: Source,
}

enum Source {
    Cached(Arc<[u8]>),
    Disk {
        file: Option<Arc<File>>,
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

/// What waiters watch: how far the data is on disk, and whether it ever
/// will be.
#[derive(Clone, Debug, Default)]
struct Status {
    durable: u64,
    failed: Option<Failure>,
    /// The flusher has stopped.
    closed: bool,
}

struct Inner {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    /// Wakes the flusher.
    work: Condvar,
    status: Mutex<Status>,
    /// Wakes blocking waiters.
    status_cv: Condvar,
    /// Wakes async waiters and workers; updated under `status`.
    status_tx: watch::Sender<Status>,
    /// Serializes cursor file writes, one lock per sink.
    persisting: Vec<Mutex<()>>,
    fsyncs: AtomicU64,
}

impl Inner {
    fn update_status(&self, f: impl FnOnce(&mut Status)) {
        let mut s = lock(&self.status);
        f(&mut s);
        self.status_tx.send_replace(s.clone());
        drop(s);
        self.status_cv.notify_all();
    }

    fn publish(&self, seq: u64) {
        {
            let mut st = lock(&self.state);
            st.durable = st.durable.max(seq);
        }
        self.update_status(|s| s.durable = s.durable.max(seq));
    }

    /// Fails the queue: pending and later appends get `message`. Records
    /// never written are forgotten.
    fn fail(&self, st: &mut State, kind: io::ErrorKind, message: String) {
        let Some(failure) = Failure::set_first(&mut st.failed, kind, message) else {
            return;
        };
        st.ops.clear();
        while st.index.back().is_some_and(|r| r.seq > st.durable) {
            let r = st.index.pop_back().expect("back exists");
            st.total_points = r.cum_points;
            st.total_bytes = r.cum_bytes;
            if r.body.is_some() {
                st.cache_bytes -= r.len;
            }
        }
        st.next_seq = st.next_seq.min(st.durable + 1);
        let end = st.end();
        for sk in &mut st.sinks {
            sk.acked = sk.acked.min(end);
            sk.read = sk.read.min(end);
            sk.inflight_end = sk.inflight_end.map(|e| e.min(end));
        }
        self.update_status(|s| s.failed = Some(failure));
    }

    /// Writes sink `s`'s cursor file if it is behind.
    fn persist(&self, s: usize) -> io::Result<()> {
        let _one_at_a_time = lock(&self.persisting[s]);
        let (target, name) = {
            let st = lock(&self.state);
            let sk = &st.sinks[s];
            if sk.acked == sk.persisted {
                return Ok(());
            }
            (sk.acked, sk.name.clone())
        };
        write_cursor(&self.dir, &name, target)?;
        lock(&self.state).sinks[s].persisted = target;
        Ok(())
    }

    /// Persists cursors moved without an ack (by `drop_oldest`).
    fn persist_dirty(&self) {
        let dirty: Vec<usize> = {
            let st = lock(&self.state);
            (0..st.sinks.len())
                .filter(|&i| st.sinks[i].acked != st.sinks[i].persisted)
                .collect()
        };
        if dirty.is_empty() {
            return;
        }
        for s in dirty {
            if let Err(e) = self.persist(s) {
                let name = lock(&self.state).sinks[s].name.clone();
                tracing::error!(sink = %name, "disk queue: cannot persist the cursor: {e}");
            }
        }
        self.collect_garbage();
    }

    /// Deletes the segments every sink's persisted cursor has passed.
    fn collect_garbage(&self) {
        let doomed: Vec<PathBuf> = {
            let mut st = lock(&self.state);
            let min = st
                .sinks
                .iter()
                .map(|s| s.persisted.seq)
                .min()
                .unwrap_or(st.next_seq);
            let keys: Vec<u64> = st.segments.keys().copied().collect();
            let mut doomed = Vec::new();
            // A segment's records all come before the next one's name; the
            // last segment is being appended to and is never deleted.
            for w in keys.windows(2) {
                if w[1] > min {
                    break;
                }
                if let Some(seg) = st.segments.remove(&w[0]) {
                    doomed.push(seg.path);
                }
            }
            doomed
        };
        for path in doomed {
            match fs::remove_file(&path) {
                Ok(()) => tracing::debug!("disk queue: removed {}", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("disk queue: cannot remove {}: {e}", path.display()),
            }
        }
    }
}

fn resolve(s: &Status, t: Ticket) -> Option<io::Result<()>> {
    if s.durable >= t.0 {
        Some(Ok(()))
    } else if let Some(f) = &s.failed {
        Some(Err(f.to_error()))
    } else if s.closed {
        Some(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the disk queue closed before the record was written",
        )))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// The flusher thread.

fn run_flusher(inner: Arc<Inner>, file: Arc<File>) {
    let _exit = FlusherExit(&inner);
    let mut file = file;
    let mut last_cursor_sync = std::time::Instant::now();
    loop {
        let (ops, target, closing) = {
            let mut st = lock(&inner.state);
            loop {
                if st.failed.is_some() {
                    return;
                }
                if !st.ops.is_empty() || st.closing {
                    break;
                }
                let dirty = st.sinks.iter().any(|s| s.acked != s.persisted);
                if dirty {
                    let left = CURSOR_SYNC_INTERVAL.saturating_sub(last_cursor_sync.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    st = inner
                        .work
                        .wait_timeout(st, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                } else {
                    st = inner.work.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            }
            // Everything queued while the last fsync ran goes out together.
            (std::mem::take(&mut st.ops), st.next_seq - 1, st.closing)
        };
        if !ops.is_empty() {
            if let Err(e) = write_ops(&inner, &mut file, ops) {
                let message = format!(
                    "disk queue {}: write or fsync failed: {e}; pushes are refused until restart",
                    inner.dir.display()
                );
                let mut st = lock(&inner.state);
                inner.fail(&mut st, e.kind(), message);
                return;
            }
            inner.publish(target);
        }
        if closing || last_cursor_sync.elapsed() >= CURSOR_SYNC_INTERVAL {
            inner.persist_dirty();
            last_cursor_sync = std::time::Instant::now();
        }
        if closing && lock(&inner.state).ops.is_empty() {
            return;
        }
    }
}

fn write_ops(inner: &Inner, file: &mut Arc<File>, ops: Vec<Op>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut dirty = false;
    for op in ops {
        match op {
            Op::Frame(frame) => {
                if buf.len() + frame.len() > WRITE_BUFFER && !buf.is_empty() {
                    (&**file).write_all(&buf)?;
                    buf.clear();
                }
                if frame.len() >= WRITE_BUFFER {
                    (&**file).write_all(&frame)?;
                } else {
                    buf.extend_from_slice(&frame);
                }
                dirty = true;
            }
            Op::Rotate(seq) => {
                if dirty {
                    (&**file).write_all(&buf)?;
                    buf.clear();
                    file.sync_data()?;
                    inner.fsyncs.fetch_add(1, Ordering::Relaxed);
                    dirty = false;
                }
                *file = Arc::new(create_segment(&inner.dir, seq)?);
                let mut st = lock(&inner.state);
                if let Some(seg) = st.segments.get_mut(&seq) {
                    seg.file = Some(file.clone());
                }
            }
        }
    }
    if dirty {
        (&**file).write_all(&buf)?;
        file.sync_data()?;
        inner.fsyncs.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// However the flusher ends (close, failure, panic), no waiter may be left
/// hanging and no later append may be accepted.
struct FlusherExit<'a>(&'a Inner);

impl Drop for FlusherExit<'_> {
    fn drop(&mut self) {
        let inner = self.0;
        let mut st = lock(&inner.state);
        if st.failed.is_none() && (!st.closing || !st.ops.is_empty()) {
            inner.fail(
                &mut st,
                io::ErrorKind::Other,
                "disk queue flusher stopped unexpectedly; pushes not acknowledged".into(),
            );
        }
        st.closing = true;
        drop(st);
        inner.update_status(|s| s.closed = true);
    }
}

// ---------------------------------------------------------------------------
// Public API.

/// A sink as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// Names its cursor file; unique.
    pub name: String,
    /// Frame bytes of records not yet acknowledged by this sink, at most
    /// (a sink with nothing pending takes any push).
    pub max_disk_bytes: u64,
    /// `overflow = "drop_oldest"`; otherwise "block".
    pub drop_oldest: bool,
}

/// What [`DiskQueue::open`] returns.
#[derive(Debug)]
pub struct Opened {
    pub queue: DiskQueue,
    /// Damage found on disk and what was done about it (also logged).
    pub warnings: Vec<String>,
    /// Per sink, in spec order: points read back from disk that the sink
    /// had not acknowledged. Some may have been delivered before a crash;
    /// count them as possible duplicates.
    pub redelivered_points: Vec<u64>,
}

/// Why a push was not queued.
#[derive(Debug)]
pub enum Refused {
    /// Sink `sink` (an index into the specs) has `drop_oldest = false` and
    /// no room: answer 503. Nothing was written.
    Full { sink: usize },
    /// [`DiskQueue::close`] was called.
    Closed,
    /// The queue failed (a write or fsync error; see the module docs), or
    /// the push is larger than [`MAX_RECORD_LEN`].
    Io(io::Error),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Full { sink } => write!(f, "the disk queue of sink #{sink} is full"),
            Refused::Closed => write!(f, "the disk queue is closed"),
            Refused::Io(e) => write!(f, "the disk queue cannot take pushes: {e}"),
        }
    }
}

impl std::error::Error for Refused {}

/// Identifies an appended push; wait on it before acknowledging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use = "a push is only durable once its ticket has been waited on"]
pub struct Ticket(u64);

/// Points for one sink, handed out by [`DiskQueue::next_batch`]; give it
/// back to [`DiskQueue::ack`] once delivered (or dropped).
#[derive(Debug)]
pub struct DiskBatch {
    /// In push order; never empty.
    pub points: Vec<Point>,
    /// Points in this batch's range that could not be read back (a record
    /// damaged on disk since open; already logged as an error). Count them
    /// as dropped.
    pub lost_points: u64,
    /// The sink's cursor once the batch is acknowledged.
    end: Pos,
}

/// The disk-backed queue shared by all sinks. `Send + Sync`; share it
/// through an `Arc`.
pub struct DiskQueue {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// Holds the directory's exclusive lock while the queue exists.
    _lock_file: File,
}

impl DiskQueue {
    /// Opens (creating if needed) the queue in `dir` for these sinks,
    /// reads back what the sinks have not acknowledged, and starts the
    /// flusher thread. Damage is repaired as the module docs describe and
    /// reported in [`Opened::warnings`]; only I/O errors (and duplicate
    /// sink names) fail. `segment_bytes` is [`DEFAULT_SEGMENT_BYTES`]
    /// outside tests.
    pub fn open(dir: &Path, sinks: &[SinkSpec], segment_bytes: u64) -> io::Result<Opened> {
        let mut seen = HashSet::new();
        for s in sinks {
            if !seen.insert(s.name.as_str()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("two sinks are named {:?}", s.name),
                ));
            }
        }
        fsutil::create_private_dir(dir)?;
        let lock_file = fsutil::lock_dir(dir, "disk queue")?;
        let mut warnings = Vec::new();

        // What is there.
        let mut segment_paths = BTreeMap::new();
        let mut cursor_paths = BTreeMap::new();
        for (name, path) in fsutil::list_dir(dir)? {
            if let Some(seq) = parse_segment_name(&name) {
                segment_paths.insert(seq, path);
            } else if name.starts_with(CURSOR_PREFIX) && name.ends_with(".tmp") {
                // A cursor being replaced: the old one is still in place.
                fs::remove_file(&path)?;
            } else if let Some(sink) = name.strip_prefix(CURSOR_PREFIX).and_then(decode_sink_name) {
                cursor_paths.insert(sink, path);
            }
        }

        // Cursors, per sink in spec order.
        enum Loaded {
            Found(Pos),
            Missing,
            Bad,
        }
        let mut loaded = Vec::with_capacity(sinks.len());
        for spec in sinks {
            loaded.push(match cursor_paths.remove(&spec.name) {
                None => Loaded::Missing,
                Some(path) => match read_cursor(&path) {
                    Ok(p) => Loaded::Found(p),
                    Err(why) => {
                        note_error(
                            &mut warnings,
                            format!(
                                "disk queue: cursor {} of sink {} is unreadable ({why}); the sink starts again from the oldest record on disk",
                                path.display(),
                                spec.name
                            ),
                        );
                        Loaded::Bad
                    }
                },
            });
        }
        let mut next_seq = FIRST_SEQ;
        for (sink, path) in &cursor_paths {
            // Sequence numbers must not go back below any cursor.
            if let Ok(p) = read_cursor(path) {
                next_seq = next_seq.max(p.seq);
            }
            fs::remove_file(path)?;
            tracing::info!(
                "disk queue: sink {sink} is no longer configured; removed its cursor {}",
                path.display()
            );
        }
        let mut min_seq = u64::MAX;
        for l in &loaded {
            match l {
                Loaded::Found(p) => {
                    next_seq = next_seq.max(p.seq);
                    min_seq = min_seq.min(p.seq);
                }
                Loaded::Bad => min_seq = 0,
                Loaded::Missing => {}
            }
        }
        // Of the records in `from..to`, those some sink still needed.
        let unacked = |from: u64, to: u64| to.saturating_sub(from.max(min_seq));

        // Segments.
        let mut index = VecDeque::new();
        let (mut total_points, mut total_bytes) = (0u64, 0u64);
        let mut segments = BTreeMap::new();
        let keys: Vec<u64> = segment_paths.keys().copied().collect();
        for (i, &key) in keys.iter().enumerate() {
            let path = &segment_paths[&key];
            let limit = keys.get(i + 1).copied();
            next_seq = next_seq.max(key);
            if limit.is_some_and(|l| l <= min_seq) {
                // Every sink is past it: the collection below deletes it.
                segments.insert(
                    key,
                    Segment {
                        path: path.clone(),
                        file: None,
                    },
                );
                continue;
            }
            let lost_all = || match limit {
                Some(l) => records(unacked(key, l)),
                None => "all its records".into(),
            };
            let data = match fs::read(path) {
                Ok(d) => d,
                Err(e) => {
                    let aside = move_aside(dir, path)?;
                    note_error(
                        &mut warnings,
                        format!(
                            "disk queue: segment {} is unreadable ({e}); moved to {}; lost {}",
                            path.display(),
                            aside.display(),
                            lost_all()
                        ),
                    );
                    continue;
                }
            };
            let parsed = match parse_segment(&data, key, limit) {
                SegmentParse::Creating => {
                    fs::remove_file(path)?;
                    continue;
                }
                SegmentParse::BadHeader => {
                    let aside = move_aside(dir, path)?;
                    note_error(
                        &mut warnings,
                        format!(
                            "disk queue: segment {} has a bad header; moved to {}; lost {}",
                            path.display(),
                            aside.display(),
                            lost_all()
                        ),
                    );
                    continue;
                }
                SegmentParse::Parsed(p) => p,
            };
            for s in &parsed.skips {
                let n = unacked(s.lost_from, s.lost_to);
                if n > 0 {
                    note_error(
                        &mut warnings,
                        format!(
                            "disk queue: segment {}: {} at offset {}; skipped the damaged record, lost {}",
                            path.display(),
                            s.why,
                            s.offset,
                            records(n)
                        ),
                    );
                }
            }
            if let Some((at, why)) = parsed.stop {
                match limit {
                    None => {
                        let file = OpenOptions::new().write(true).open(path)?;
                        file.set_len(at as u64)?;
                        file.sync_all()?;
                        note_warn(
                            &mut warnings,
                            format!(
                                "disk queue: segment {}: {why} at offset {at}; dropped {} bytes (a write torn by a crash, never acknowledged) and truncated the file",
                                path.display(),
                                data.len() - at
                            ),
                        );
                    }
                    Some(l) => {
                        let n = unacked(parsed.next_expected, l);
                        if n > 0 {
                            note_error(
                                &mut warnings,
                                format!(
                                    "disk queue: segment {}: {why} at offset {at}; skipped the rest of the file, lost {}",
                                    path.display(),
                                    records(n)
                                ),
                            );
                        }
                    }
                }
            }
            if parsed.recs.is_empty() {
                // Nothing to deliver in it (any loss was reported above).
                fs::remove_file(path)?;
                continue;
            }
            let file = Arc::new(File::open(path)?);
            for (offset, f) in parsed.recs {
                next_seq = next_seq.max(f.seq + 1);
                if f.seq < min_seq {
                    continue;
                }
                index.push_back(Rec {
                    seq: f.seq,
                    segment: key,
                    offset,
                    len: f.len as u64,
                    points: f.points,
                    append_ns: f.append_ns,
                    cum_points: total_points,
                    cum_bytes: total_bytes,
                    body: None,
                });
                total_points += f.points as u64;
                total_bytes += f.len as u64;
            }
            segments.insert(
                key,
                Segment {
                    path: path.clone(),
                    file: Some(file),
                },
            );
        }

        // A fresh segment at every open: the old ones are only read.
        let active = Arc::new(create_segment(dir, next_seq)?);
        segments.insert(
            next_seq,
            Segment {
                path: dir.join(segment_name(next_seq)),
                file: Some(active.clone()),
            },
        );
        let mut st = State {
            index,
            total_points,
            total_bytes,
            next_seq,
            durable: next_seq - 1,
            segments,
            active_bytes: FILE_HEADER_LEN as u64,
            ops: Vec::new(),
            sinks: Vec::with_capacity(sinks.len()),
            cache_order: VecDeque::new(),
            cache_bytes: 0,
            closing: false,
            failed: None,
        };

        // Where each sink resumes; cursors that moved are rewritten.
        let mut redelivered_points = Vec::with_capacity(sinks.len());
        let mut rewrite = Vec::new();
        for (spec, l) in sinks.iter().zip(loaded) {
            let (pos, stored) = match l {
                Loaded::Found(p) => (st.normalize(p), Some(p)),
                Loaded::Bad => (st.pos_at(0), None),
                Loaded::Missing => {
                    tracing::info!(sink = %spec.name, "disk queue: new sink; it starts with the next push");
                    (st.end(), None)
                }
            };
            if stored != Some(pos) {
                rewrite.push((spec.name.clone(), pos));
            }
            redelivered_points.push(st.total_points - st.points_at(pos));
            st.sinks.push(SinkState {
                name: spec.name.clone(),
                max_bytes: spec.max_disk_bytes,
                drop_oldest: spec.drop_oldest,
                acked: pos,
                read: pos,
                inflight_end: None,
                persisted: pos,
            });
        }
        for (name, pos) in rewrite {
            write_cursor(dir, &name, pos)?;
        }
        st.trim();

        let (status_tx, _) = watch::channel(Status {
            durable: next_seq - 1,
            ..Status::default()
        });
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(1),
            persisting: (0..sinks.len()).map(|_| Mutex::new(())).collect(),
            state: Mutex::new(st),
            work: Condvar::new(),
            status: Mutex::new(Status {
                durable: next_seq - 1,
                ..Status::default()
            }),
            status_cv: Condvar::new(),
            status_tx,
            fsyncs: AtomicU64::new(0),
        });
        inner.collect_garbage();
        let thread_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name("disk-queue-flusher".into())
            .spawn(move || run_flusher(thread_inner, active))?;
        Ok(Opened {
            queue: DiskQueue {
                inner,
                flusher: Mutex::new(Some(handle)),
                _lock_file: lock_file,
            },
            warnings,
            redelivered_points,
        })
    }

    /// Queues a push for every sink, all or nothing: if a sink with
    /// `drop_oldest = false` lacks room, `Err(Full)` and nothing is written;
    /// otherwise the record is buffered for every sink (sinks with
    /// `drop_oldest` first skip their oldest records not in flight, as
    /// needed) and the points each sink dropped are returned, in spec
    /// order, for the caller to count and log. The check and the append are
    /// one step under the queue's lock, so the caller needs no lock of its
    /// own. Never blocks on I/O: wait on the ticket before acknowledging
    /// the push. An empty push is not written (its ticket is already
    /// durable).
    pub fn append(&self, points: &[Point]) -> Result<(Ticket, Vec<u64>), Refused> {
        if points.is_empty() {
            let sinks = lock(&self.inner.state).sinks.len();
            return Ok((Ticket(0), vec![0; sinks]));
        }
        // Encode and checksum the points before taking the lock.
        let append_ns = unix_now_ns();
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + points.len() * 96);
        frame.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        encode_body(points, &mut frame);
        let payload_len = frame.len() - FRAME_HEADER_LEN + RECORD_TRAILER_LEN;
        if payload_len > MAX_RECORD_LEN || points.len() > u32::MAX as usize {
            return Err(Refused::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a push of {payload_len} bytes exceeds the disk queue's record limit of {MAX_RECORD_LEN}"),
            )));
        }
        frame.reserve_exact(RECORD_TRAILER_LEN);
        frame[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        let crc_points =
            crc32c::crc32c_append(crc32c::crc32c(&frame[..4]), &frame[FRAME_HEADER_LEN..]);
        let cost = (FRAME_HEADER_LEN + payload_len) as u64;
        let body: Option<Arc<[u8]>> =
            (cost <= CACHE_MAX_RECORD).then(|| Arc::from(&frame[FRAME_HEADER_LEN..]));

        let mut st = lock(&self.inner.state);
        if let Some(f) = &st.failed {
            return Err(Refused::Io(f.to_error()));
        }
        if st.closing {
            return Err(Refused::Closed);
        }
        for s in 0..st.sinks.len() {
            if !st.sinks[s].drop_oldest && !st.has_room(s, cost) {
                return Err(Refused::Full { sink: s });
            }
        }
        let mut dropped = vec![0; st.sinks.len()];
        for (s, d) in dropped.iter_mut().enumerate() {
            if st.sinks[s].drop_oldest {
                *d = st.drop_oldest(s, cost);
            }
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let mut trailer = [0u8; RECORD_TRAILER_LEN];
        trailer[..8].copy_from_slice(&seq.to_le_bytes());
        trailer[8..].copy_from_slice(&append_ns.to_le_bytes());
        frame.extend_from_slice(&trailer);
        let crc = crc32c::crc32c_append(crc_points, &trailer);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());

        let header = FILE_HEADER_LEN as u64;
        if st.active_bytes > header && st.active_bytes + cost > self.inner.segment_bytes {
            st.segments.insert(
                seq,
                Segment {
                    path: self.inner.dir.join(segment_name(seq)),
                    file: None,
                },
            );
            st.ops.push(Op::Rotate(seq));
            st.active_bytes = header;
        }
        let segment = *st.segments.keys().next_back().expect("an active segment");
        let offset = st.active_bytes;
        st.active_bytes += cost;
        let (cum_points, cum_bytes) = (st.total_points, st.total_bytes);
        st.total_points += points.len() as u64;
        st.total_bytes += cost;
        let cached = body.is_some();
        st.index.push_back(Rec {
            seq,
            segment,
            offset,
            len: cost,
            points: points.len() as u32,
            append_ns,
            cum_points,
            cum_bytes,
            body,
        });
        if cached {
            st.cache_bytes += cost;
            st.cache_order.push_back(seq);
            st.evict();
        }
        st.ops.push(Op::Frame(frame));
        if dropped.iter().any(|&d| d > 0) {
            st.trim();
        }
        drop(st);
        self.inner.work.notify_one();
        Ok((Ticket(seq), dropped))
    }

    /// Waits until the push is on disk (or the queue failed).
    pub async fn wait(&self, t: Ticket) -> io::Result<()> {
        let mut rx = self.inner.status_tx.subscribe();
        let result = match rx.wait_for(|s| resolve(s, t).is_some()).await {
            Ok(s) => resolve(&s, t),
            Err(_) => None,
        };
        result.unwrap_or_else(|| Err(io::Error::other("disk queue status channel closed")))
    }

    /// Blocking form of [`DiskQueue::wait`], for threads outside a runtime.
    pub fn wait_blocking(&self, t: Ticket) -> io::Result<()> {
        let mut s = lock(&self.inner.status);
        loop {
            if let Some(r) = resolve(&s, t) {
                return r;
            }
            s = self
                .inner
                .status_cv
                .wait(s)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The next batch for sink `sink`: up to `max_points` points (at least
    /// one), waiting up to `flush_every` for that many. A record larger than
    /// `max_points` is split across batches. If `flush_every` passes with
    /// nothing to send, the wait starts again when the first point arrives,
    /// so points are batched for `flush_every` even on an idle sink. Only
    /// durable records are handed out. `None` once the queue is closed and
    /// the sink has everything. One batch in flight per sink: ack it before
    /// asking for the next. Reads come from the page cache or the disk,
    /// without the queue's lock, on tokio's blocking pool. Cancel-safe: the
    /// batch is handed out only when this returns it.
    pub async fn next_batch(
        &self,
        sink: usize,
        max_points: usize,
        flush_every: Duration,
    ) -> Option<DiskBatch> {
        let max_points = max_points.max(1) as u64;
        let mut deadline = Some(Instant::now() + flush_every);
        let mut lost_before = 0;
        loop {
            let mut rx = self.inner.status_tx.subscribe();
            let taken = {
                let st = lock(&self.inner.state);
                let durable_end = st.durable_end();
                let available = st
                    .points_at(durable_end)
                    .saturating_sub(st.points_at(st.sinks[sink].read));
                let now = Instant::now();
                if available == 0 && deadline.is_some_and(|d| now >= d) {
                    deadline = None;
                }
                if available > 0 && deadline.is_none() {
                    deadline = Some(now + flush_every);
                }
                let timed_out = deadline.is_some_and(|d| now >= d);
                if available >= max_points || (available > 0 && (timed_out || st.closing)) {
                    let start = st.sinks[sink].read;
                    let (items, end) = st.plan(sink, max_points);
                    Some((items, start, end))
                } else if available == 0 && st.closing && st.durable + 1 >= st.next_seq {
                    if lost_before > 0 {
                        tracing::error!(sink = %st.sinks[sink].name, points = lost_before, "disk queue: points lost to damaged records");
                    }
                    return None;
                } else {
                    None
                }
            };
            if let Some((items, start, end)) = taken {
                // Read without the lock; nothing is handed out until the
                // points are here, so cancelling this future loses nothing.
                let needs_disk = items.iter().any(|i| matches!(i.src, Source::Disk { .. }));
                let (points, lost) = if needs_disk {
                    match tokio::task::spawn_blocking(move || load(items)).await {
                        Ok(loaded) => loaded,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        // The runtime is shutting down.
                        Err(_) => return None,
                    }
                } else {
                    load(items)
                };
                if !lock(&self.inner.state).commit(sink, start, end) {
                    continue;
                }
                let batch = DiskBatch {
                    points,
                    lost_points: lost_before + lost,
                    end,
                };
                if !batch.points.is_empty() {
                    return Some(batch);
                }
                // Every point in range was unreadable (and logged): move
                // past them and report the count with the next batch.
                lost_before = batch.lost_points;
                if let Err(e) = self.ack(sink, &batch) {
                    tracing::error!("disk queue: cannot persist a cursor: {e}");
                }
                continue;
            }
            match deadline {
                Some(d) => {
                    tokio::select! {
                        r = rx.changed() => if r.is_err() { return None },
                        _ = tokio::time::sleep_until(d) => {}
                    }
                }
                None => {
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// The batch was delivered (or dropped as rejected): moves sink `sink`'s
    /// cursor past it and persists it (a small write, an fsync and a rename:
    /// blocking I/O), then deletes the segments no sink needs any more. The
    /// cursor moves in memory even if persisting fails; the flusher retries.
    pub fn ack(&self, sink: usize, batch: &DiskBatch) -> io::Result<()> {
        {
            let mut st = lock(&self.inner.state);
            let end = st.end();
            let batch_end = batch.end.min(end);
            let sk = &mut st.sinks[sink];
            if batch_end > sk.acked {
                sk.acked = batch_end;
            }
            if sk.inflight_end.is_some_and(|e| batch_end >= e) {
                // Nothing else in flight: what was dropped meanwhile is
                // passed too.
                sk.inflight_end = None;
                sk.acked = sk.read;
            }
            st.trim();
        }
        self.inner.persist(sink)?;
        self.inner.collect_garbage();
        Ok(())
    }

    /// Points and frame bytes sink `sink` has not acknowledged (the batch
    /// in flight included, dropped records excluded).
    pub fn depth(&self, sink: usize) -> (u64, u64) {
        lock(&self.inner.state).depth(sink)
    }

    /// Age of the oldest point sink `sink` has not acknowledged, by the
    /// time its push was appended.
    pub fn oldest_age(&self, sink: usize) -> Option<Duration> {
        let st = lock(&self.inner.state);
        let sk = &st.sinks[sink];
        let e = sk.inflight_end.unwrap_or(sk.acked);
        let oldest = if sk.acked < e { sk.acked } else { sk.read };
        let (i, _) = st.locate(oldest)?;
        let age = unix_now_ns().saturating_sub(st.index[i].append_ns);
        Some(Duration::from_nanos(age.max(0) as u64))
    }

    /// How many times the flusher fsynced segment data; far fewer than the
    /// appends when they arrive concurrently.
    pub fn fsync_count(&self) -> u64 {
        self.inner.fsyncs.load(Ordering::Relaxed)
    }

    /// No more appends; writes and fsyncs what is buffered, persists
    /// cursors and stops the flusher thread (blocking until then). Workers
    /// drain what is left and then get `None`; acks keep working.
    pub fn close(&self) {
        lock(&self.inner.state).closing = true;
        self.inner.work.notify_all();
        let handle = lock(&self.flusher).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("disk queue flusher thread panicked");
            }
        }
        self.inner.update_status(|s| s.closed = true);
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("DiskQueue")
            .field("dir", &self.inner.dir)
            .field("next_seq", &st.next_seq)
            .field("durable", &st.durable)
            .field("records", &st.index.len())
            .field("failed", &st.failed.as_ref().map(|f| &f.message))
            .finish()
    }
}

/// Reads and decodes a batch's records; damaged ones are logged and
/// counted as lost points.
fn load(items: Vec<Item>) -> (Vec<Point>, u64) {
    let mut points = Vec::new();
    let mut lost = 0;
    for item in items {
        let want = (item.to - item.from) as usize;
        let (decoded, path) = match item.src {
            Source::Cached(body) => (decode_body(&body), None),
            Source::Disk {
                file,
                path,
                offset,
                len,
            } => (
                read_record(file.as_deref(), offset, len, item.seq),
                Some(path),
            ),
        };
        match decoded {
            Ok(mut pts) if pts.len() >= item.to as usize => {
                pts.truncate(item.to as usize);
                points.extend(pts.drain(item.from as usize..));
            }
            Ok(pts) => {
                tracing::error!(
                    "disk queue: record {} holds {} points, fewer than indexed; {want} points lost",
                    item.seq,
                    pts.len()
                );
                lost += want as u64;
            }
            Err(why) => {
                let file = path.map(|p| p.display().to_string()).unwrap_or_default();
                tracing::error!(
                    "disk queue: segment {file}: record {} is unreadable ({why}); {want} points lost",
                    item.seq
                );
                lost += want as u64;
            }
        }
    }
    (points, lost)
}

fn read_record(file: Option<&File>, offset: u64, len: u64, seq: u64) -> Result<Vec<Point>, String> {
    let file = file.ok_or("segment file is not open")?;
    let mut frame = vec![0u8; len as usize];
    file.read_exact_at(&mut frame, offset)
        .map_err(|e| e.to_string())?;
    let f = check_frame(&frame).map_err(str::to_string)?;
    if f.seq != seq || f.len != frame.len() {
        return Err("a different record is at its place".into());
    }
    decode_body(&frame[FRAME_HEADER_LEN..frame.len() - RECORD_TRAILER_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::fsutil::testing::{append_bytes, assert_group_commit, mode, names, BURST};

    const BIG: u64 = 1 << 30;

    fn spec(name: &str, max_disk_bytes: u64, drop_oldest: bool) -> SinkSpec {
        SinkSpec {
            name: name.into(),
            max_disk_bytes,
            drop_oldest,
        }
    }

    fn two_sinks() -> Vec<SinkSpec> {
        vec![spec("a", BIG, false), spec("b", BIG, false)]
    }

    fn open(dir: &Path, sinks: &[SinkSpec], segment_bytes: u64) -> Opened {
        DiskQueue::open(dir, sinks, segment_bytes).expect("open disk queue")
    }

    /// Push `push`, `n` points; point `i` has value `push * 1000 + i`.
    fn push(push: usize, n: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                measurement: "m".into(),
                tags: vec![("push".into(), push.to_string().into())],
                fields: vec![Field {
                    key: "f".into(),
                    value: (push * 1000 + i) as f64,
                    suffix: SeriesSuffix::None,
                }],
                time_ns: i as i64,
                family: Arc::from("fam"),
                kind: MetricType::Gauge,
            })
            .collect()
    }

    /// The bytes a push of `points` takes on disk: its frame.
    fn frame_len(points: &[Point]) -> usize {
        let mut body = Vec::new();
        encode_body(points, &mut body);
        FRAME_HEADER_LEN + body.len() + RECORD_TRAILER_LEN
    }

    fn values(points: &[Point]) -> Vec<u64> {
        points.iter().map(|p| p.fields[0].value as u64).collect()
    }

    /// The values of pushes `pushes`, `n` points each.
    fn expect(pushes: impl IntoIterator<Item = usize>, n: usize) -> Vec<u64> {
        pushes
            .into_iter()
            .flat_map(|p| (0..n).map(move |i| (p * 1000 + i) as u64))
            .collect()
    }

    fn append_wait(q: &DiskQueue, points: &[Point]) -> Vec<u64> {
        let (t, dropped) = q.append(points).unwrap();
        q.wait_blocking(t).unwrap();
        dropped
    }

    /// Takes `n` points for `sink` in batches of `max`, acking each if `ack`.
    async fn take(q: &DiskQueue, sink: usize, n: u64, max: usize, ack: bool) -> Vec<u64> {
        let mut got = Vec::new();
        while (got.len() as u64) < n {
            let b = q
                .next_batch(sink, max, Duration::ZERO)
                .await
                .expect("a batch");
            assert!(b.points.len() <= max);
            got.extend(values(&b.points));
            if ack {
                q.ack(sink, &b).unwrap();
            }
        }
        assert_eq!(got.len() as u64, n);
        got
    }

    /// Everything left for every sink, after closing.
    async fn drain(q: &DiskQueue, sinks: usize) -> Vec<Vec<u64>> {
        q.close();
        let mut out = Vec::new();
        for s in 0..sinks {
            let mut got = Vec::new();
            while let Some(b) = q.next_batch(s, 7, Duration::from_secs(60)).await {
                got.extend(values(&b.points));
                q.ack(s, &b).unwrap();
            }
            out.push(got);
        }
        out
    }

    fn segments(dir: &Path) -> Vec<String> {
        names(dir)
            .into_iter()
            .filter(|n| parse_segment_name(n).is_some())
            .collect()
    }

    fn segment_path(dir: &Path, seq: u64) -> PathBuf {
        dir.join(segment_name(seq))
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<DiskQueue>();
        check::<DiskBatch>();
    }

    #[test]
    fn encoding_round_trips() {
        let mut points = push(1, 2);
        points[0].tags = vec![("a".into(), "x,y= z\n\\".into()), ("ü".into(), "🙂".into())];
        points[0].fields = vec![
            Field {
                key: "c".into(),
                value: -0.0,
                suffix: SeriesSuffix::Count,
            },
            Field {
                key: "s".into(),
                value: 1e300,
                suffix: SeriesSuffix::Sum,
            },
            Field {
                key: "b".into(),
                value: f64::MIN_POSITIVE,
                suffix: SeriesSuffix::Bucket,
            },
        ];
        points[0].time_ns = i64::MIN;
        points[1].tags.clear();
        points[1].fields.clear();
        points[1].measurement.clear();
        points[1].family = Arc::from("");
        let kinds = [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Summary,
            MetricType::Untyped,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
        ];
        for kind in kinds {
            points[1].kind = kind;
            let mut body = Vec::new();
            encode_body(&points, &mut body);
            let back = decode_body(&body).unwrap();
            assert_eq!(back, points);
            assert_eq!(back[0].fields[0].value.to_bits(), (-0.0f64).to_bits());
            // Any truncation is an error, never a panic.
            for cut in 0..body.len() {
                assert!(decode_body(&body[..cut]).is_err());
            }
        }
        let mut body = Vec::new();
        encode_body(&points, &mut body);
        body.push(0);
        assert!(decode_body(&body).unwrap_err().contains("unexpected bytes"));
    }

    #[test]
    fn sink_names_are_safe_file_names() {
        for name in ["vm", "a/b", "../x", "x.tmp", "", "é %", "sink-1_2"] {
            let enc = encode_sink_name(name);
            assert!(enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_%".contains(&b)));
            assert_eq!(decode_sink_name(&enc).as_deref(), Some(name));
        }
        assert_eq!(encode_sink_name("a/b"), "a%2Fb");
        assert_eq!(decode_sink_name("a.tmp"), None);
    }

    #[tokio::test]
    async fn append_wait_reopen_redelivers_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("q");
        let sinks = two_sinks();
        {
            let o = open(&dir, &sinks, DEFAULT_SEGMENT_BYTES);
            assert!(o.warnings.is_empty(), "{:?}", o.warnings);
            assert_eq!(o.redelivered_points, [0, 0]);
            for p in 0..20 {
                let (t, dropped) = o.queue.append(&push(p, 3)).unwrap();
                assert_eq!(dropped, [0, 0]);
                o.queue.wait(t).await.unwrap();
            }
            assert_eq!(o.queue.depth(0).0, 60);
            // Delivered but never acknowledged: comes back too.
            let b = o.queue.next_batch(0, 10, Duration::ZERO).await.unwrap();
            assert_eq!(values(&b.points), expect(0..4, 3)[..10]);
        }
        let o = open(&dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        assert_eq!(o.redelivered_points, [60, 60]);
        assert_eq!(o.queue.depth(1).0, 60);
        let got = drain(&o.queue, 2).await;
        assert_eq!(got[0], expect(0..20, 3));
        assert_eq!(got[1], expect(0..20, 3));
    }

    #[tokio::test]
    async fn sinks_resume_from_their_own_cursors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            for p in 0..10 {
                append_wait(&o.queue, &push(p, 4));
            }
            // Sink a: 3 whole pushes and 2 points of the fourth.
            assert_eq!(take(&o.queue, 0, 14, 7, true).await, expect(0..10, 4)[..14]);
            // Sink b: 5 pushes acknowledged, one more taken but not.
            assert_eq!(take(&o.queue, 1, 20, 4, true).await, expect(0..5, 4));
            take(&o.queue, 1, 4, 4, false).await;
            assert_eq!(o.queue.depth(0).0, 26);
            assert_eq!(o.queue.depth(1).0, 20);
        }
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert_eq!(o.redelivered_points, [26, 20]);
        let got = drain(&o.queue, 2).await;
        assert_eq!(got[0], expect(0..10, 4)[14..]);
        assert_eq!(got[1], expect(5..10, 4));
    }

    #[tokio::test]
    async fn acks_persist_across_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = vec![spec("only", BIG, false)];
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            for p in 0..5 {
                append_wait(&o.queue, &push(p, 2));
            }
            take(&o.queue, 0, 10, 3, true).await;
            assert_eq!(o.queue.depth(0), (0, 0));
            assert_eq!(o.queue.oldest_age(0), None);
        }
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            assert_eq!(o.redelivered_points, [0]);
            assert!(o.warnings.is_empty());
            // Every segment but the new active one is gone.
            assert_eq!(segments(dir).len(), 1);
            append_wait(&o.queue, &push(7, 2));
            let got = drain(&o.queue, 1).await;
            assert_eq!(got[0], expect([7], 2));
        }
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert_eq!(o.redelivered_points, [0]);
    }

    #[tokio::test]
    async fn full_block_sink_refuses_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let one = frame_len(&push(0, 5)) as u64;
        let sinks = vec![spec("roomy", BIG, false), spec("small", one * 2, false)];
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            let q = &o.queue;
            append_wait(q, &push(0, 5));
            append_wait(q, &push(1, 5));
            assert_eq!(q.depth(1), (10, one * 2));
            let size = fs::metadata(segment_path(dir, 1)).unwrap().len();
            match q.append(&push(2, 5)) {
                Err(Refused::Full { sink: 1 }) => {}
                other => panic!("{other:?}"),
            }
            // Nobody got it, and nothing was written.
            assert_eq!(q.depth(0), (10, one * 2));
            assert_eq!(q.depth(1), (10, one * 2));
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(fs::metadata(segment_path(dir, 1)).unwrap().len(), size);
            // Once the small sink catches up there is room again.
            take(q, 1, 5, 5, true).await;
            append_wait(q, &push(3, 5));
        }
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert_eq!(o.redelivered_points, [15, 10]);
        let got = drain(&o.queue, 2).await;
        assert_eq!(got[0], expect([0, 1, 3], 5));
        assert_eq!(got[1], expect([1, 3], 5));
    }

    #[tokio::test]
    async fn an_empty_sink_takes_an_oversize_push() {
        let tmp = tempfile::tempdir().unwrap();
        let o = open(tmp.path(), &[spec("tiny", 1, false)], 1 << 20);
        append_wait(&o.queue, &push(0, 100));
        assert!(matches!(
            o.queue.append(&push(1, 1)),
            Err(Refused::Full { sink: 0 })
        ));
    }

    #[tokio::test]
    async fn drop_oldest_drops_and_reports() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let one = frame_len(&push(0, 2)) as u64;
        let sinks = vec![spec("keep", BIG, false), spec("lossy", one * 2, true)];
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            let q = &o.queue;
            assert_eq!(append_wait(q, &push(0, 2)), [0, 0]);
            assert_eq!(append_wait(q, &push(1, 2)), [0, 0]);
            // Push 0 makes room for push 2.
            assert_eq!(append_wait(q, &push(2, 2)), [0, 2]);
            assert_eq!(q.depth(1), (4, one * 2));
            // Part of push 1 in flight: it stays (and its record keeps
            // taking space); the rest of push 1 and push 2 are dropped.
            let b = q.next_batch(1, 1, Duration::ZERO).await.unwrap();
            assert_eq!(values(&b.points), expect([1], 2)[..1]);
            assert_eq!(append_wait(q, &push(3, 2)), [0, 3]);
            assert_eq!(q.depth(1), (3, one * 2));
            q.ack(1, &b).unwrap();
            // Acking the batch passes what was dropped after it.
            assert_eq!(q.depth(1).0, 2);
            assert_eq!(take(q, 1, 2, 10, true).await, expect([3], 2));
            assert_eq!(q.depth(0).0, 8);
        }
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert_eq!(o.redelivered_points, [8, 0]);
    }

    #[tokio::test]
    async fn dropped_points_are_persisted_by_the_flusher() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = vec![spec("down", 1, true)];
        {
            let o = open(dir, &sinks, 1);
            for p in 0..5 {
                append_wait(&o.queue, &push(p, 1));
            }
            // Each push dropped the one before: the cursor moved without an
            // ack, and the segments behind it go once it is persisted.
            std::thread::sleep(CURSOR_SYNC_INTERVAL + Duration::from_millis(200));
            append_wait(&o.queue, &push(5, 1));
            std::thread::sleep(Duration::from_millis(100));
            assert!(segments(dir).len() <= 3, "{:?}", segments(dir));
        }
        let o = open(dir, &sinks, 1);
        assert_eq!(o.redelivered_points, [1]);
        assert_eq!(drain(&o.queue, 1).await[0], expect([5], 1));
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_with_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            for p in 0..4 {
                append_wait(&o.queue, &push(p, 2));
            }
        }
        let path = segment_path(dir, 1);
        let good_len = fs::metadata(&path).unwrap().len();
        // The start of a frame: a header and part of its payload.
        let mut torn = 200u32.to_le_bytes().to_vec();
        torn.extend_from_slice(&[7u8; 40]);
        append_bytes(&path, &torn);
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
            let w = &o.warnings[0];
            assert!(w.contains("segment-0000000000000001"), "{w}");
            assert!(w.contains("torn") && w.contains("dropped 44 bytes"), "{w}");
            assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
            assert_eq!(o.redelivered_points, [8, 8]);
            append_wait(&o.queue, &push(4, 2));
        }
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        let got = drain(&o.queue, 2).await;
        assert_eq!(got[0], expect(0..5, 2));
        assert_eq!(got[1], expect(0..5, 2));
    }

    #[tokio::test]
    async fn corrupt_middle_segment_is_skipped_and_later_ones_delivered() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        {
            // One record per segment.
            let o = open(dir, &sinks, 1);
            for p in 0..5 {
                append_wait(&o.queue, &push(p, 3));
            }
        }
        assert_eq!(segments(dir).len(), 5);
        // Damage the only record of segment 3 (push 2).
        let path = segment_path(dir, 3);
        let mut data = fs::read(&path).unwrap();
        let at = FILE_HEADER_LEN + FRAME_HEADER_LEN + 10;
        data[at] ^= 0x40;
        fs::write(&path, &data).unwrap();

        let o = open(dir, &sinks, 1);
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        let w = &o.warnings[0];
        assert!(w.contains("segment-0000000000000003"), "{w}");
        assert!(w.contains("checksum mismatch"), "{w}");
        assert!(w.contains("lost 1 record"), "{w}");
        assert_eq!(o.redelivered_points, [12, 12]);
        let got = drain(&o.queue, 2).await;
        assert_eq!(got[0], expect([0, 1, 3, 4], 3));
        assert_eq!(got[1], got[0]);
        drop(o);
        // Every sink has passed it now: gone, and no more warnings.
        let o = open(dir, &sinks, 1);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn damaged_records_inside_a_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        let frame = frame_len(&push(0, 2));
        {
            // Three records per segment: 1..=3, 4..=6, 7..=9.
            let o = open(dir, &sinks, (FILE_HEADER_LEN + 3 * frame) as u64);
            for p in 0..9 {
                append_wait(&o.queue, &push(p, 2));
            }
        }
        assert_eq!(segments(dir).len(), 3);
        // Segment 1: a payload byte of its second record (length intact).
        let p1 = segment_path(dir, 1);
        let mut data = fs::read(&p1).unwrap();
        data[FILE_HEADER_LEN + frame + FRAME_HEADER_LEN + 3] ^= 1;
        fs::write(&p1, &data).unwrap();
        // Segment 4: the length of its second record.
        let p4 = segment_path(dir, 4);
        let mut data = fs::read(&p4).unwrap();
        data[FILE_HEADER_LEN + frame + 1] ^= 0x10;
        fs::write(&p4, &data).unwrap();

        let o = open(dir, &sinks, 1 << 20);
        assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
        assert!(o.warnings[0].contains("segment-0000000000000001"));
        assert!(o.warnings[0].contains("skipped the damaged record, lost 1 record"));
        assert!(o.warnings[1].contains("segment-0000000000000004"));
        assert!(
            o.warnings[1].contains("skipped the rest of the file, lost 2 records"),
            "{}",
            o.warnings[1]
        );
        let got = drain(&o.queue, 2).await;
        assert_eq!(got[0], expect([0, 2, 3, 6, 7, 8], 2));
    }

    #[tokio::test]
    async fn bad_header_segment_is_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        {
            let o = open(dir, &sinks, 1);
            for p in 0..3 {
                append_wait(&o.queue, &push(p, 1));
            }
        }
        fs::write(segment_path(dir, 2), b"garbage!garbage!").unwrap();
        let o = open(dir, &sinks, 1);
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        assert!(o.warnings[0].contains("bad header") && o.warnings[0].contains("lost 1 record"));
        assert!(names(dir)
            .iter()
            .any(|n| n.starts_with("segment-0000000000000002.corrupt-")));
        assert_eq!(drain(&o.queue, 2).await[0], expect([0, 2], 1));
    }

    #[tokio::test]
    async fn segments_are_deleted_once_every_sink_passed_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        let o = open(dir, &sinks, 1);
        let q = &o.queue;
        for p in 0..5 {
            append_wait(q, &push(p, 2));
        }
        assert_eq!(segments(dir).len(), 5);
        take(q, 0, 10, 4, true).await;
        // Sink b holds them all back.
        assert_eq!(segments(dir).len(), 5);
        take(q, 1, 4, 4, true).await;
        assert_eq!(
            segments(dir),
            [segment_name(3), segment_name(4), segment_name(5)]
        );
        take(q, 1, 6, 4, true).await;
        // The last one is still being appended to.
        assert_eq!(segments(dir), [segment_name(5)]);
        append_wait(q, &push(5, 2));
        assert_eq!(segments(dir), [segment_name(5), segment_name(6)]);
        take(q, 0, 2, 4, true).await;
        take(q, 1, 2, 4, true).await;
        assert_eq!(segments(dir), [segment_name(6)]);
    }

    #[test]
    fn concurrent_appends_share_fsyncs() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 100;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        {
            let o = open(dir, &sinks, 64 << 10);
            let q = Arc::new(o.queue);
            assert_group_commit(
                &q,
                THREADS,
                PER_THREAD,
                |q, t, i| {
                    let points = if t == THREADS {
                        push(900 + i, 1)
                    } else {
                        push(t * 100 + i, 2)
                    };
                    q.append(&points).unwrap().0
                },
                |q, ticket| q.wait_blocking(ticket).unwrap(),
                DiskQueue::fsync_count,
            );
        }
        let o = open(dir, &sinks, 64 << 10);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        let total = (THREADS * PER_THREAD * 2 + BURST) as u64;
        assert_eq!(o.redelivered_points, [total, total]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let got = rt.block_on(drain(&o.queue, 2));
        for sink in got {
            assert_eq!(sink.len() as u64, total);
            // Each thread's pushes in its own order, each push whole.
            let mut next = [0usize; THREADS];
            for pair in sink[..THREADS * PER_THREAD * 2].chunks(2) {
                let push = pair[0] as usize / 1000;
                assert_eq!(pair[1], pair[0] + 1);
                assert_eq!(push % 100, next[push / 100]);
                next[push / 100] += 1;
            }
            assert_eq!(next, [PER_THREAD; THREADS]);
        }
    }

    #[tokio::test]
    async fn files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b");
        {
            let o = open(&dir, &two_sinks(), 1);
            for p in 0..3 {
                append_wait(&o.queue, &push(p, 1));
            }
            take(&o.queue, 0, 1, 1, true).await;
        }
        assert_eq!(mode(&dir), 0o700);
        let all = names(&dir);
        assert!(all.contains(&"cursor-a".to_string()) && all.contains(&"cursor-b".to_string()));
        assert!(all.len() >= 5, "{all:?}");
        for name in all {
            assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
        }
    }

    #[tokio::test]
    async fn large_push_is_split_across_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
        let q = &o.queue;
        append_wait(q, &push(0, 10));
        append_wait(q, &push(1, 1));
        let b = q.next_batch(0, 4, Duration::ZERO).await.unwrap();
        assert_eq!(values(&b.points), expect([0], 10)[..4]);
        q.ack(0, &b).unwrap();
        assert_eq!(q.depth(0).0, 7);
        let b = q.next_batch(0, 4, Duration::ZERO).await.unwrap();
        q.ack(0, &b).unwrap();
        let b = q.next_batch(0, 4, Duration::ZERO).await.unwrap();
        let mut want = expect([0], 10)[8..].to_vec();
        want.extend(expect([1], 1));
        assert_eq!(values(&b.points), want);
        q.ack(0, &b).unwrap();
        assert_eq!(q.depth(0), (0, 0));
        assert_eq!(q.depth(1).0, 11);
    }

    #[test]
    fn cancelled_next_batch_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let o = open(dir, &two_sinks(), DEFAULT_SEGMENT_BYTES);
            append_wait(&o.queue, &push(0, 3));
        }
        // After a reopen nothing is cached: the batch is read from disk on
        // the blocking pool, whose only thread is kept busy, so the first
        // poll is pending for sure.
        let o = open(dir, &two_sinks(), DEFAULT_SEGMENT_BYTES);
        let q = &o.queue;
        let rt = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (release, busy) = std::sync::mpsc::channel::<()>();
            let occupant = tokio::task::spawn_blocking(move || busy.recv());
            let mut fut = Box::pin(q.next_batch(0, 10, Duration::ZERO));
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(fut.as_mut(), cx))
            })
            .await;
            assert!(polled.is_pending());
            drop(fut);
            release.send(()).unwrap();
            occupant.await.unwrap().unwrap();
            assert_eq!(take(q, 0, 3, 10, true).await, expect([0], 3));
        });
    }

    #[tokio::test]
    async fn batches_wait_for_the_flush_interval() {
        let tmp = tempfile::tempdir().unwrap();
        let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
        let q = Arc::new(o.queue);
        append_wait(&q, &push(0, 2));
        let started = std::time::Instant::now();
        let b = q
            .next_batch(0, 100, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(b.points.len(), 2);
        assert!(started.elapsed() >= Duration::from_millis(45));
        q.ack(0, &b).unwrap();
        // A full batch goes at once.
        append_wait(&q, &push(1, 5));
        let b = q.next_batch(0, 5, Duration::from_secs(60)).await.unwrap();
        assert_eq!(b.points.len(), 5);
        q.ack(0, &b).unwrap();
        // A worker waiting on an empty queue wakes for a push.
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.next_batch(0, 3, Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (t, _) = q.append(&push(2, 3)).unwrap();
        q.wait(t).await.unwrap();
        let b = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(values(&b.points), expect([2], 3));
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
        let q = Arc::new(o.queue);
        // Not waited on: close still writes it.
        let (t, _) = q.append(&push(0, 3)).unwrap();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(b) = q.next_batch(1, 100, Duration::from_secs(60)).await {
                    got.extend(values(&b.points));
                    q.ack(1, &b).unwrap();
                }
                got
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.close();
        q.wait(t).await.unwrap();
        assert!(matches!(q.append(&push(1, 1)), Err(Refused::Closed)));
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, expect([0], 3));
        assert_eq!(q.depth(1), (0, 0));
        assert_eq!(q.depth(0).0, 3);
    }

    #[tokio::test]
    async fn oldest_age_and_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
        let q = &o.queue;
        assert_eq!(q.oldest_age(0), None);
        append_wait(q, &push(0, 2));
        std::thread::sleep(Duration::from_millis(300));
        append_wait(q, &push(1, 2));
        let age = q.oldest_age(0).unwrap();
        assert!(age >= Duration::from_millis(300), "{age:?}");
        let b = q.next_batch(0, 2, Duration::ZERO).await.unwrap();
        // In flight still counts.
        assert_eq!(q.depth(0).0, 4);
        assert!(q.oldest_age(0).unwrap() >= Duration::from_millis(300));
        q.ack(0, &b).unwrap();
        assert_eq!(q.depth(0).0, 2);
        assert!(q.oldest_age(0).unwrap() < Duration::from_millis(300));
    }

    #[tokio::test]
    async fn new_sink_starts_at_the_end_and_removed_sink_holds_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let o = open(dir, &two_sinks(), 1);
            for p in 0..3 {
                append_wait(&o.queue, &push(p, 1));
            }
            take(&o.queue, 0, 3, 10, true).await;
        }
        // Sink b is gone, sink c is new.
        let sinks = vec![spec("a", BIG, false), spec("c", BIG, false)];
        let o = open(dir, &sinks, 1);
        assert_eq!(o.redelivered_points, [0, 0]);
        assert!(!dir.join("cursor-b").exists());
        assert!(dir.join("cursor-c").exists());
        // Nothing holds the old segments back any more.
        assert_eq!(segments(dir), [segment_name(4)]);
        append_wait(&o.queue, &push(9, 1));
        let got = drain(&o.queue, 2).await;
        assert_eq!(got[0], expect([9], 1));
        assert_eq!(got[1], expect([9], 1));
    }

    #[tokio::test]
    async fn unreadable_cursor_restarts_from_the_oldest_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks = two_sinks();
        {
            let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
            for p in 0..3 {
                append_wait(&o.queue, &push(p, 1));
            }
            take(&o.queue, 0, 2, 2, true).await;
            take(&o.queue, 1, 3, 10, true).await;
        }
        fs::write(dir.join("cursor-b"), b"nonsense").unwrap();
        let o = open(dir, &sinks, DEFAULT_SEGMENT_BYTES);
        assert_eq!(o.warnings.len(), 1);
        assert!(o.warnings[0].contains("cursor-b"), "{}", o.warnings[0]);
        assert_eq!(o.redelivered_points, [1, 3]);
    }

    #[test]
    fn directory_is_locked_while_open() {
        let tmp = tempfile::tempdir().unwrap();
        let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
        let err = DiskQueue::open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(o);
        open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
    }

    #[test]
    fn duplicate_sink_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = DiskQueue::open(
            tmp.path(),
            &[spec("x", 1, false), spec("x", 1, true)],
            DEFAULT_SEGMENT_BYTES,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn write_failure_fails_waiters_and_later_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let o = open(tmp.path(), &two_sinks(), DEFAULT_SEGMENT_BYTES);
        let q = &o.queue;
        append_wait(q, &push(0, 1));
        {
            // Make the flusher's next write fail (ENOSPC).
            let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
            let st = lock(&q.inner.state);
            let key = *st.segments.keys().next_back().unwrap();
            let file = st.segments[&key].file.clone().unwrap();
            drop(st);
            // Swap the descriptor under the shared File (test only).
            use std::os::fd::AsRawFd;
            let r = unsafe { libc_dup2(full.as_raw_fd(), file.as_raw_fd()) };
            assert!(r >= 0);
        }
        let (t, _) = q.append(&push(1, 1)).unwrap();
        let err = q.wait_blocking(t).unwrap_err();
        assert!(err.to_string().contains("write or fsync failed"), "{err}");
        assert!(matches!(q.append(&push(2, 1)), Err(Refused::Io(_))));
        // What was durable is still there for the sinks.
        assert_eq!(q.depth(0).0, 1);
    }

    extern "C" {
        #[link_name = "dup2"]
        fn libc_dup2(old: i32, new: i32) -> i32;
    }
}
