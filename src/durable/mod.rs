//! The durable engine: one log of checksummed records in segment files,
//! made durable by group commit, and read back after a crash. The store's
//! journal (`store::journal`) and the sinks' disk queue (`sink::disk`) are
//! its clients. It imports nothing of pushkit.
//!
//! # Invariants
//!
//! 1. **A record is durable once its ticket's wait returns `Ok`**: it was
//!    written and `fdatasync`ed, and its segment had been fsynced into the
//!    directory when it was created. Clients acknowledge only after that.
//! 2. **One fsync per group commit.** One flusher thread takes everything
//!    appended while the previous fsync ran, writes it with one commit
//!    marker after it, and fsyncs once. Records appended one at a time,
//!    each waited for before the next, take exactly one fsync each; records
//!    appended under one [`CommitGroup`] (a push's store record and queue
//!    record) share one, even where a segment rotation falls between them:
//!    a batch is written to one segment, and a rotation due inside it
//!    follows it (unless every holder had already released the segment
//!    being written). A stream of overlapping groups cannot hold
//!    commits back: the flusher waits only for the groups open when it
//!    starts to wait. [`Log::fsync_count`] and [`total_fsyncs`] count them.
//! 3. **Sequence numbers are assigned at append, strictly increasing, and
//!    never reused**, not even after a crash; records are on disk in that
//!    order. A client that needs its records in the order of its own state
//!    appends under its own lock.
//! 4. **Recovery hands out every acknowledged record, in order, and no torn
//!    one**: a record counts only with a valid checksum, and at the end of
//!    any segment only when its group's commit marker follows it (in an
//!    older segment, unless damage may have taken the marker). Damage
//!    elsewhere loses only the damaged bytes: the reader resyncs on the
//!    next valid record header (see `record` for why payload bytes are not
//!    taken for one). Nothing found on disk makes `open` fail; only I/O
//!    errors do.
//! 5. **A failed write or fsync fails its group, and every record not
//!    yet durable with it**: after a failed fsync the kernel may have
//!    dropped the dirty pages, so a retry could claim durability that is
//!    not there, and later records may depend on the failed ones (a
//!    store mutation is checked against the state the one before it
//!    left). Appends are refused until the flusher recovers, once no
//!    [`CommitGroup`] is open (so no group straddles a failure): at once
//!    after an I/O error, each second after ENOSPC or EDQUOT. It lists
//!    the failed sequence numbers in `FAILED` (replay ignores them, even
//!    where a failed fsync left their commit marker), then goes on in a
//!    fresh segment (a failed file is never written again; a full one
//!    can then be deleted once released), giving up `RESERVE` if the
//!    disk has no room for it. Clients see a failure through
//!    [`Log::epoch`], [`Log::failed_since`] and [`Log::on_failure`], run
//!    before any later record is durable. A failed group is cut off its
//!    file when possible.
//! 6. **A segment is deleted only when every holder has released it**
//!    ([`Log::release`]): each client says which records it no longer needs
//!    (the store once a snapshot covers them, a sink once its cursor passed
//!    them). The segment being written is never deleted. Up to two
//!    released segments may be kept as spares and written over as later
//!    ones; their old records, all numbered below the new name, are never
//!    handed out again (see `reader`).
//! 7. **One process per directory**: the log holds an exclusive lock on
//!    `LOCK` while open.
//! 8. **Two logs commit a pair in a known order.** A log gated on a
//!    companion ([`Log::gate_on`]) writes a record appended with
//!    [`Log::append_after`] only once its companion record is durable, and
//!    fails its group (as a failed write would, though nothing was
//!    written) if that one failed. A companion record whose partner then
//!    fails is revoked by its client ([`Log::revoke`]): listed in `FAILED`,
//!    so that recovery never hands it out. (The store's journal and a disk
//!    queue on two filesystems; one log needs neither.)
//! 9. **A snapshot names its log.** A log has an id (`LOGID`), and a
//!    snapshot's cut is a sequence number of the log it names, so that a
//!    client moving between logs (the store, when `queue_dir` comes or
//!    goes) never applies a cut to the wrong log.
//!
//! # Files
//!
//! In the log's directory (created 0700; files 0600):
//! - `log-<first seq>` (20 digits): segments, format in `record`. A new one
//!   at every open, and when the current one would pass `segment_bytes`
//!   (after the batch being written: a segment passes it by at most what
//!   was appended during one fsync).
//! - `snapshot-<seq>`: a client's state as of the records below `seq`
//!   (see `snapshot`); `.tmp` while being written. (The store keeps its
//!   snapshots in `persistence_dir`, wherever its log is.)
//! - `LOGID`: the log's id.
//! - `*.corrupt-<unix time>`: damaged files moved aside, never deleted.
//! - `FAILED`: the sequence numbers of failed groups and revoked records
//!   (first and last, a line each) still in segments kept.
//! - `RESERVE`: 64 KiB of zeros, given up when a full disk leaves no room
//!   to start a segment.
//! - `SPARE`, `SPARE-2`: released segments kept to be written over as the
//!   next ones (appends into blocks a file has fsync without an inode
//!   write), while the disk has room. A reused segment's old records stay
//!   past its new ones; the reader tells them apart by their sequence
//!   numbers.
//! - `LOCK`.
//!
//! # Layout of the code
//!
//! `record` (framing, checksums, versions), `io` (the file operations, a
//! trait so tests inject faults), `ledger` (segments, record places,
//! holds), `state` (what appenders, the flusher and waiters share),
//! `flusher` (group commit, rotation, failure and recovery), `writer` (the
//! public API: open, append, wait, read, release, close), `reader`
//! (recovery), `snapshot`, `legacy` (reading the format-1 files of earlier
//! releases), `fsutil` (directories, locks, moving aside).

mod flusher;
pub mod fsutil;
pub mod io;
pub mod ledger;
pub mod legacy;
pub mod reader;
pub mod record;
pub mod snapshot;
mod state;
pub mod writer;

pub use io::{Faults, FaultyIo, Io, RealIo};
pub use reader::{damaged_bytes, RecordRef};
pub use record::{Payload, KIND_QUEUE, KIND_STORE, MAX_PAYLOAD};
pub use snapshot::{Snapshot, SnapshotWriter};
pub use writer::{
    is_disk_full, read_log_id, total_fsyncs, CommitGroup, Log, LogOptions, Opened, Slot, SlotState,
    Ticket,
};

#[cfg(test)]
mod reuse_tests;
#[cfg(test)]
mod tests;
