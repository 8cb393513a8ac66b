//! The on-disk record-batch format. See the module note in `embedded/mod.rs` for the layout.
//!
//! Encoding happens outside the partition lock (the CRC does not cover the base offset, which
//! is patched in under the lock), so concurrent producers spend the lock only on `pwrite`.

use crate::error::LogError;
use crate::limits::Limits;
use crate::record::{ConsumedRecord, Record};
use bytes::Bytes;

/// Bytes before the first record: base offset (8), length (4), CRC (4), magic (1), flags (1),
/// reserved (2), record count (4), max timestamp (8).
pub const HEADER_LEN: usize = 32;
/// The format version written by this build.
pub const MAGIC: u8 = 1;
/// `length` counts the bytes after the length field itself.
const LEN_FIELD_END: usize = 12;
/// The CRC covers bytes from here to the end of the batch.
const CRC_START: usize = 16;
/// Fixed bytes of one encoded record: length (4) + timestamp (8) + key length (4) +
/// value length (4) + header count (2).
const RECORD_FIXED: usize = 22;

/// The parsed fixed header of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Total bytes of the batch, header included.
    pub total_len: usize,
    /// Stored CRC32C.
    pub crc: u32,
    /// Format version.
    pub magic: u8,
    /// Number of records.
    pub record_count: u32,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
}

impl BatchHeader {
    /// One past the last offset of the batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }

    /// Parses the fixed header; `None` when the bytes cannot be a header (too short, wrong
    /// magic, impossible length). The CRC is checked separately over the whole batch.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let base_offset = u64::from_le_bytes(buf[0..8].try_into().ok()?);
        let len = u32::from_le_bytes(buf[8..12].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(buf[12..16].try_into().ok()?);
        let magic = buf[16];
        let record_count = u32::from_le_bytes(buf[20..24].try_into().ok()?);
        let max_timestamp = i64::from_le_bytes(buf[24..32].try_into().ok()?);
        let total_len = LEN_FIELD_END + len;
        if magic != MAGIC || total_len < HEADER_LEN || record_count == 0 {
            return None;
        }
        // Every record takes at least RECORD_FIXED bytes: a count that cannot fit is garbage.
        if (record_count as usize).saturating_mul(RECORD_FIXED) > total_len - HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset,
            total_len,
            crc,
            magic,
            record_count,
            max_timestamp,
        })
    }
}

/// Checks the limits for a batch and returns its encoded size.
pub fn validate(records: &[Record], limits: &Limits) -> Result<usize, LogError> {
    if records.is_empty() {
        return Err(LogError::BatchTooLarge {
            what: "record count",
            size: 0,
            max: limits.max_batch_records,
            knob: "a batch needs at least one record",
        });
    }
    if records.len() > limits.max_batch_records {
        return Err(LogError::BatchTooLarge {
            what: "record count",
            size: records.len(),
            max: limits.max_batch_records,
            knob: "limits.max_batch_records",
        });
    }
    let mut total = HEADER_LEN;
    for (index, r) in records.iter().enumerate() {
        if r.headers.len() > limits.max_headers_per_record {
            return Err(LogError::RecordTooLarge {
                index,
                what: "header count",
                size: r.headers.len(),
                max: limits.max_headers_per_record,
                knob: "limits.max_headers_per_record",
            });
        }
        let payload = r.payload_len();
        if payload > limits.max_record_bytes {
            return Err(LogError::RecordTooLarge {
                index,
                what: "key + value + headers",
                size: payload,
                max: limits.max_record_bytes,
                knob: "limits.max_record_bytes",
            });
        }
        for (name, _) in &r.headers {
            if name.len() > u16::MAX as usize {
                return Err(LogError::RecordTooLarge {
                    index,
                    what: "header name",
                    size: name.len(),
                    max: u16::MAX as usize,
                    knob: "header names are at most 65535 bytes",
                });
            }
        }
        total += RECORD_FIXED + payload + 6 * r.headers.len();
    }
    if total > limits.max_batch_bytes {
        return Err(LogError::BatchTooLarge {
            what: "encoded bytes",
            size: total,
            max: limits.max_batch_bytes,
            knob: "limits.max_batch_bytes",
        });
    }
    Ok(total)
}

/// Encodes `records` (already validated) into `out` with base offset 0 and a valid CRC.
pub fn encode(records: &[Record], encoded_len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(encoded_len);
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut max_ts = i64::MIN;
    for r in records {
        max_ts = max_ts.max(r.timestamp_ms);
        let len = RECORD_FIXED - 4 + r.payload_len() + 6 * r.headers.len();
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&r.timestamp_ms.to_le_bytes());
        match &r.key {
            Some(k) => {
                out.extend_from_slice(&(k.len() as i32).to_le_bytes());
                out.extend_from_slice(k);
            }
            None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        }
        out.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.value);
        out.extend_from_slice(&(r.headers.len() as u16).to_le_bytes());
        for (name, value) in &r.headers {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
    }
    debug_assert_eq!(
        out.len(),
        encoded_len,
        "validate() and encode() disagree on size"
    );
    let len = (out.len() - LEN_FIELD_END) as u32;
    out[8..12].copy_from_slice(&len.to_le_bytes());
    out[16] = MAGIC;
    out[20..24].copy_from_slice(&(records.len() as u32).to_le_bytes());
    out[24..32].copy_from_slice(&max_ts.to_le_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
}

/// Writes the base offset into an encoded batch (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[0..8].copy_from_slice(&base_offset.to_le_bytes());
}

/// Whether the stored CRC matches the batch bytes.
pub fn crc_ok(batch: &[u8], header: &BatchHeader) -> bool {
    batch.len() == header.total_len && crc32c::crc32c(&batch[CRC_START..]) == header.crc
}

/// Decodes the records of a CRC-checked batch, keeping those with offset `>= from`.
/// `data` holds exactly the batch. Returns a description of the problem on malformed input.
pub fn decode(
    data: &Bytes,
    header: &BatchHeader,
    from: u64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<(), String> {
    let mut pos = HEADER_LEN;
    let take = |pos: &mut usize, n: usize| -> Result<Bytes, String> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| format!("field of {n} bytes at {pos} runs past the batch end"))?;
        let b = data.slice(*pos..end);
        *pos = end;
        Ok(b)
    };
    let u32_at = |b: &Bytes| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for i in 0..header.record_count {
        let len = u32_at(&take(&mut pos, 4)?) as usize;
        let record_end = pos + len;
        if record_end > data.len() {
            return Err(format!("record {i} of {len} bytes runs past the batch end"));
        }
        let ts = take(&mut pos, 8)?;
        let timestamp_ms = i64::from_le_bytes(ts[..8].try_into().map_err(|_| "timestamp")?);
        let klen = i32::from_le_bytes(take(&mut pos, 4)?[..4].try_into().map_err(|_| "key")?);
        let key = if klen < 0 {
            None
        } else {
            Some(take(&mut pos, klen as usize)?)
        };
        let vlen = u32_at(&take(&mut pos, 4)?) as usize;
        let value = take(&mut pos, vlen)?;
        let hcount = take(&mut pos, 2)?;
        let hcount = u16::from_le_bytes([hcount[0], hcount[1]]);
        let mut headers = Vec::with_capacity(hcount as usize);
        for _ in 0..hcount {
            let nl = take(&mut pos, 2)?;
            let name = take(&mut pos, u16::from_le_bytes([nl[0], nl[1]]) as usize)?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| format!("record {i}: header name is not UTF-8"))?;
            let hv = u32_at(&take(&mut pos, 4)?) as usize;
            headers.push((name, take(&mut pos, hv)?));
        }
        if pos != record_end {
            return Err(format!(
                "record {i}: length field says {len} bytes, its fields say otherwise"
            ));
        }
        let offset = header.base_offset + u64::from(i);
        if offset >= from {
            out.push(ConsumedRecord {
                offset,
                record: Record {
                    key,
                    value,
                    headers,
                    timestamp_ms,
                },
            });
        }
    }
    if pos != data.len() {
        return Err(format!(
            "{} trailing bytes after the last record",
            data.len() - pos
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(
                ("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..20)),
                0..4,
            ),
            any::<i64>(),
        )
            .prop_map(|(k, v, h, ts)| Record {
                key: k.map(Bytes::from),
                value: Bytes::from(v),
                headers: h.into_iter().map(|(n, v)| (n, Bytes::from(v))).collect(),
                timestamp_ms: ts,
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(records in proptest::collection::vec(arb_record(), 1..20), base in 0u64..1_000_000) {
            let len = validate(&records, &Limits::default()).unwrap();
            let mut buf = Vec::new();
            encode(&records, len, &mut buf);
            set_base_offset(&mut buf, base);
            let h = BatchHeader::parse(&buf).unwrap();
            prop_assert!(crc_ok(&buf, &h));
            prop_assert_eq!(h.base_offset, base);
            let mut out = Vec::new();
            decode(&Bytes::from(buf), &h, 0, &mut out).unwrap();
            let got: Vec<Record> = out.iter().map(|c| c.record.clone()).collect();
            prop_assert_eq!(got, records.clone());
            prop_assert_eq!(out[0].offset, base);
        }

        #[test]
        fn any_single_bit_flip_after_the_crc_is_detected(records in proptest::collection::vec(arb_record(), 1..5), bit in any::<prop::sample::Index>()) {
            let len = validate(&records, &Limits::default()).unwrap();
            let mut buf = Vec::new();
            encode(&records, len, &mut buf);
            let covered = (buf.len() - CRC_START) * 8;
            let b = bit.index(covered);
            buf[CRC_START + b / 8] ^= 1 << (b % 8);
            // Either the header no longer parses, or the CRC catches it.
            if let Some(h) = BatchHeader::parse(&buf) { prop_assert!(!crc_ok(&buf, &h)); }
        }
    }
}
