//! The store's one mutation type and its byte encoding, as journal and
//! snapshot records carry it. As in the Pushgateway, PUT, POST, DELETE,
//! wipe and expiry all go through one write path, so there is one thing
//! to journal and to replay.
//!
//! Encoding: a tag byte, then fields in little endian; strings as `u32`
//! length + UTF-8; families as delimited `io.prometheus.client.MetricFamily`
//! messages (the format pushes arrive in, so the decoder is the one pushes
//! already exercise).
//!
//! Journal records of a push, a failure time or a delete carry, right
//! after their tag, a link: the sequence number of the group's previous
//! journal record (0: the group did not exist). A POST or a failure time
//! is a change to the state before it; if replay finds that a record's
//! link names one it did not apply (damage took it), applying the change
//! would build a state no client ever pushed, so the group is dropped
//! instead until a record restores it whole (see `Store::load_from`).
//! Records written before links existed (tags 1 to 3) are read too.

use crate::expfmt::delimited::{parse_delimited, write_delimited};
use crate::model::family::Family;
use crate::model::GroupingKey;

#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// A successful PUT (`replace`) or POST of sanitized families.
    Push {
        key: GroupingKey,
        replace: bool,
        families: Vec<Family>,
        at_ns: i64,
    },
    /// A push refused by the consistency check: only the failure time.
    Failure { key: GroupingKey, at_ns: i64 },
    /// DELETE, or expiry by `group_ttl`.
    Delete { key: GroupingKey },
    /// `PUT P/api/v1/admin/wipe`.
    Wipe,
    /// One whole group, as a snapshot holds it.
    Restore(GroupState),
}

/// Everything the store keeps of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupState {
    pub key: GroupingKey,
    /// 0 when no push succeeded yet.
    pub push_ns: i64,
    /// 0 when no push failed yet.
    pub failure_ns: i64,
    /// When the group was created; a group that never had a successful
    /// push expires `group_ttl` after this.
    pub created_ns: i64,
    /// Each family with the time of the push that stored it.
    pub families: Vec<(Family, i64)>,
}

const PUSH: u8 = 1;
const FAILURE: u8 = 2;
const DELETE: u8 = 3;
const WIPE: u8 = 4;
const RESTORE: u8 = 5;
/// The same three, with the link to the group's previous record.
const LINKED_PUSH: u8 = 6;
const LINKED_FAILURE: u8 = 7;
const LINKED_DELETE: u8 = 8;
/// Where the link is in a linked record.
const LINK: std::ops::Range<usize> = 1..9;

/// Sets the link of a record [`Mutation::encode`] or [`encode_push`]
/// wrote (to the sequence number of its group's previous record); a
/// record without one is left alone.
pub fn set_link(record: &mut [u8], prev: u64) {
    if matches!(
        record.first(),
        Some(&(LINKED_PUSH | LINKED_FAILURE | LINKED_DELETE))
    ) {
        record[LINK].copy_from_slice(&prev.to_le_bytes());
    }
}

impl Mutation {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Mutation::Push {
                key,
                replace,
                families,
                at_ns,
            } => return encode_push(key, *replace, families, *at_ns),
            Mutation::Failure { key, at_ns } => {
                out.push(LINKED_FAILURE);
                put_i64(&mut out, 0);
                put_i64(&mut out, *at_ns);
                put_key(&mut out, key);
            }
            Mutation::Delete { key } => {
                out.push(LINKED_DELETE);
                put_i64(&mut out, 0);
                put_key(&mut out, key);
            }
            Mutation::Wipe => out.push(WIPE),
            Mutation::Restore(g) => {
                out.push(RESTORE);
                put_i64(&mut out, g.push_ns);
                put_i64(&mut out, g.failure_ns);
                put_i64(&mut out, g.created_ns);
                put_key(&mut out, &g.key);
                put_u32(&mut out, g.families.len() as u32);
                for (family, at) in &g.families {
                    put_i64(&mut out, *at);
                    let mut bytes = Vec::new();
                    write_delimited(std::slice::from_ref(family), &mut bytes);
                    put_bytes(&mut out, &bytes);
                }
            }
        }
        out
    }

    /// The group it changes; `None` for a wipe.
    pub fn key(&self) -> Option<&GroupingKey> {
        match self {
            Mutation::Push { key, .. }
            | Mutation::Failure { key, .. }
            | Mutation::Delete { key } => Some(key),
            Mutation::Restore(state) => Some(&state.key),
            Mutation::Wipe => None,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Mutation, String> {
        Mutation::decode_linked(bytes).map(|(m, _)| m)
    }

    /// [`Mutation::decode`], with the record's link if it has one.
    pub fn decode_linked(bytes: &[u8]) -> Result<(Mutation, Option<u64>), String> {
        let mut r = Reader { buf: bytes };
        let mut tag = r.u8()?;
        let mut link = None;
        if matches!(tag, LINKED_PUSH | LINKED_FAILURE | LINKED_DELETE) {
            link = Some(r.i64()? as u64);
            tag -= LINKED_PUSH - PUSH;
        }
        let m = match tag {
            PUSH => {
                let replace = r.u8()? != 0;
                let at_ns = r.i64()?;
                let key = r.key()?;
                let families = parse_delimited(r.rest()).map_err(|e| e.to_string())?;
                Mutation::Push {
                    key,
                    replace,
                    families,
                    at_ns,
                }
            }
            FAILURE => {
                let at_ns = r.i64()?;
                Mutation::Failure {
                    at_ns,
                    key: r.key()?,
                }
            }
            DELETE => Mutation::Delete { key: r.key()? },
            WIPE => Mutation::Wipe,
            RESTORE => {
                let push_ns = r.i64()?;
                let failure_ns = r.i64()?;
                let created_ns = r.i64()?;
                let key = r.key()?;
                let n = r.u32()?;
                let mut families = Vec::new();
                for _ in 0..n {
                    let at = r.i64()?;
                    let mut parsed = parse_delimited(r.bytes()?).map_err(|e| e.to_string())?;
                    if parsed.len() != 1 {
                        return Err("a snapshot family record holds more than one family".into());
                    }
                    families.push((parsed.remove(0), at));
                }
                Mutation::Restore(GroupState {
                    key,
                    push_ns,
                    failure_ns,
                    created_ns,
                    families,
                })
            }
            tag => return Err(format!("unknown record tag {tag}")),
        };
        if !r.buf.is_empty() {
            return Err("trailing bytes after the record".into());
        }
        Ok((m, link))
    }
}

/// The record of a successful push, encoded from borrowed parts (the
/// store encodes it before taking its lock).
pub fn encode_push(key: &GroupingKey, replace: bool, families: &[Family], at_ns: i64) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(LINKED_PUSH);
    put_i64(&mut out, 0);
    out.push(u8::from(replace));
    put_i64(&mut out, at_ns);
    put_key(&mut out, key);
    write_delimited(families, &mut out);
    out
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn put_key(out: &mut Vec<u8>, key: &GroupingKey) {
    put_u32(out, key.labels().len() as u32);
    for (k, v) in key.labels() {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("record is truncated".into());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "label is not UTF-8".to_string())
    }

    fn key(&mut self) -> Result<GroupingKey, String> {
        let n = self.u32()?;
        let mut labels = Vec::new();
        for _ in 0..n {
            labels.push((self.string()?, self.string()?));
        }
        GroupingKey::from_labels(labels).ok_or_else(|| "grouping key without a job".to_string())
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::text::parse_text;
    use crate::model::GroupingKey;

    #[test]
    fn every_mutation_round_trips() {
        let key = GroupingKey::from_pairs("j", &["instance", "i", "a", "b"]);
        let families = parse_text(
            b"# HELP c A counter.\n# TYPE c counter\nc{x=\"1\"} 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\nu NaN\n",
        )
        .unwrap();
        let all = [
            Mutation::Push {
                key: key.clone(),
                replace: true,
                families: families.clone(),
                at_ns: 1_700_000_000_123_456_789,
            },
            Mutation::Push {
                key: key.clone(),
                replace: false,
                families: vec![],
                at_ns: 5,
            },
            Mutation::Failure {
                key: key.clone(),
                at_ns: 7,
            },
            Mutation::Delete { key: key.clone() },
            Mutation::Wipe,
            Mutation::Restore(GroupState {
                key,
                push_ns: 1,
                failure_ns: 2,
                created_ns: 3,
                families: families.into_iter().zip(10..).collect(),
            }),
        ];
        for m in all {
            let back = Mutation::decode(&m.encode()).unwrap();
            // NaN != NaN: compare the encodings instead.
            assert_eq!(back.encode(), m.encode(), "{m:?}");
        }
    }

    #[test]
    fn damaged_records_are_errors() {
        let key = GroupingKey::from_pairs("j", &[]);
        let bytes = Mutation::Failure { key, at_ns: 1 }.encode();
        for cut in 0..bytes.len() {
            assert!(Mutation::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Mutation::decode(&[99]).is_err());
    }
}
