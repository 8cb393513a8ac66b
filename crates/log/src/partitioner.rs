//! Key partitioning compatible with Kafka's default partitioner.
//!
//! Source: Apache Kafka `org.apache.kafka.common.utils.Utils#murmur2` and
//! `BuiltInPartitioner#partitionForKey` (`toPositive(murmur2(key)) % numPartitions`, where
//! `toPositive(x) = x & 0x7fffffff`). Using the same function on both backends means a patient
//! key lands on the same partition number whether Aorta runs embedded or on a Kafka cluster,
//! and Java/librdkafka (`murmur2_random`) producers agree with us.

/// Kafka's 32-bit murmur2 (seed `0x9747b28c`), returned as the unsigned bit pattern.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    // Kafka hashes the length as a Java int; lengths above i32::MAX cannot occur for records
    // bounded by `Limits`, and truncating matches Java for every length Java can express.
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner chooses for `key` among `partitions`.
///
/// `partitions` must be at least 1; 0 is treated as 1 so that this never divides by zero.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2` (Java signed ints).
    #[test]
    fn matches_kafka_utils_test_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
            (&[12, 42, 56, 24, 109, 111], 274_204_207),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input) as i32, *want, "murmur2({input:?})");
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        // toPositive(-973932308) = 1173551340 (from the same Kafka test data).
        assert_eq!(partition_for_key(b"21", u32::MAX), 1_173_551_340);
        assert_eq!(partition_for_key(b"21", 12), 1_173_551_340 % 12);
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }
}
