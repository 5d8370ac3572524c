//! Append-only record stores that keep a bounded tail in memory and the rest in an anonymous
//! temporary file, and exact order statistics over them in bounded memory. They are what lets a
//! replay's report stay exact (nearest-rank percentiles over every value) whatever the input size:
//! the report keeps its observations here, and computes from scans of them.

use std::fs::File;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;

/// A record of a [`Spill`]: written to bytes and read back, in the same process.
pub trait Record: Sized {
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one record from the front of `input` and advances it past the record.
    fn decode(input: &mut &[u8]) -> Self;
}

/// Records in the order they were pushed: the newest `chunk_bytes` of them encoded in memory, the
/// rest in a temporary file (created on the first spill, in `TMPDIR`, deleted when dropped).
pub struct Spill<T> {
    tail: Vec<u8>,
    file: Option<File>,
    /// The byte length of each chunk in the file, in order: a scan reads one chunk at a time.
    chunks: Vec<u32>,
    len: u64,
    chunk_bytes: usize,
    marker: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Spill<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill").field("len", &self.len).field("spilled_chunks", &self.chunks.len()).finish()
    }
}

impl<T: Record> Spill<T> {
    pub fn new(chunk_bytes: usize) -> Spill<T> {
        Spill { tail: Vec::new(), file: None, chunks: Vec::new(), len: 0, chunk_bytes: chunk_bytes.max(1), marker: PhantomData }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, record: &T) -> io::Result<()> {
        record.encode(&mut self.tail);
        self.len += 1;
        if self.tail.len() >= self.chunk_bytes {
            let file = match &mut self.file {
                Some(file) => file,
                None => self.file.insert(tempfile::tempfile()?),
            };
            file.write_all(&self.tail)?;
            let len = u32::try_from(self.tail.len()).map_err(|_| io::Error::other("a spill chunk over 4 GiB"))?;
            self.chunks.push(len);
            self.tail.clear();
        }
        Ok(())
    }

    /// Calls `f` with every record, in the order they were pushed.
    pub fn scan(&self, mut f: impl FnMut(T)) -> io::Result<()> {
        if let Some(file) = &self.file {
            let mut buf = Vec::new();
            let mut offset = 0u64;
            for &len in &self.chunks {
                buf.resize(len as usize, 0);
                file.read_exact_at(&mut buf, offset)?;
                offset += u64::from(len);
                let mut rest = buf.as_slice();
                while !rest.is_empty() {
                    f(T::decode(&mut rest));
                }
            }
        }
        let mut rest = self.tail.as_slice();
        while !rest.is_empty() {
            f(T::decode(&mut rest));
        }
        Ok(())
    }
}

/// A source of values that can be read more than once: a scan of one or more spills, filtered.
pub trait Values {
    fn each(&self, f: &mut dyn FnMut(f64)) -> io::Result<()>;
}

impl<F: Fn(&mut dyn FnMut(f64)) -> io::Result<()>> Values for F {
    fn each(&self, f: &mut dyn FnMut(f64)) -> io::Result<()> {
        self(f)
    }
}

/// The nearest rank (1-based) of percentile `p` among `n` values: the smallest value with at least
/// p% of the values at or below it.
pub fn nearest_rank(p: f64, n: u64) -> u64 {
    (((p / 100.0) * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// The values at the 1-based `ranks` among the `n` values of `values`, ordered as `f64::total_cmp`
/// orders them. Exact, holding at most `limit` values in memory: up to `limit` values are sorted
/// in memory; more are narrowed down 16 bits of their order at a time, one scan each (at most five
/// scans per rank).
pub fn at_ranks(values: &dyn Values, n: u64, ranks: &[u64], limit: usize) -> io::Result<Vec<f64>> {
    debug_assert!(ranks.iter().all(|r| (1..=n).contains(r)), "ranks {ranks:?} of {n}");
    if n <= limit as u64 {
        let mut all = Vec::with_capacity(n as usize);
        values.each(&mut |v| all.push(v))?;
        all.sort_by(f64::total_cmp);
        return Ok(ranks.iter().map(|&r| all[(r - 1) as usize]).collect());
    }
    ranks.iter().map(|&r| select(values, r, limit)).collect()
}

/// A key whose unsigned order is `f64::total_cmp`'s order of the values.
fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// Radix selection of the value at `rank`, 16 bits of the order key per scan.
fn select(values: &dyn Values, mut rank: u64, limit: usize) -> io::Result<f64> {
    // The key's bits above `known` are `prefix`'s: the candidates are the values that share them.
    let mut prefix = 0u64;
    let mut known = 64u32;
    let candidate = |key: u64, prefix: u64, known: u32| known == 64 || key >> known == prefix >> known;
    loop {
        let shift = known - 16;
        let mut counts = vec![0u64; 1 << 16];
        values.each(&mut |v| {
            let key = order_key(v);
            if candidate(key, prefix, known) {
                counts[((key >> shift) & 0xffff) as usize] += 1;
            }
        })?;
        let mut digit = 0;
        for (d, &count) in counts.iter().enumerate() {
            if rank <= count {
                digit = d;
                break;
            }
            rank -= count;
        }
        prefix |= (digit as u64) << shift;
        known = shift;
        if known == 0 {
            // Every candidate has this very key: it is the value.
            return Ok(from_order_key(prefix));
        }
        if counts[digit] <= limit as u64 {
            let mut left = Vec::with_capacity(counts[digit] as usize);
            values.each(&mut |v| {
                if candidate(order_key(v), prefix, known) {
                    left.push(v);
                }
            })?;
            left.sort_by(f64::total_cmp);
            return Ok(left[(rank - 1) as usize]);
        }
    }
}

/// Fixed-width and length-prefixed fields of records, little-endian.
pub mod codec {
    pub fn put_u8(out: &mut Vec<u8>, v: u8) {
        out.push(v);
    }
    pub fn put_u32(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn put_u64(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn put_u128(out: &mut Vec<u8>, v: u128) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn put_i64(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn put_f64(out: &mut Vec<u8>, v: f64) {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    pub fn put_str(out: &mut Vec<u8>, s: &str) {
        put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
        out.extend_from_slice(&s.as_bytes()[..s.len().min(u32::MAX as usize)]);
    }
    pub fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => {
                put_u8(out, 1);
                put_str(out, s);
            }
            None => put_u8(out, 0),
        }
    }
    pub fn put_opt_f64(out: &mut Vec<u8>, v: Option<f64>) {
        match v {
            Some(v) => {
                put_u8(out, 1);
                put_f64(out, v);
            }
            None => put_u8(out, 0),
        }
    }

    fn take<const N: usize>(input: &mut &[u8]) -> [u8; N] {
        let (head, rest) = input.split_at(N);
        *input = rest;
        head.try_into().unwrap_or_else(|_| unreachable!("split at {N}"))
    }
    pub fn u8(input: &mut &[u8]) -> u8 {
        take::<1>(input)[0]
    }
    pub fn u32(input: &mut &[u8]) -> u32 {
        u32::from_le_bytes(take(input))
    }
    pub fn u64(input: &mut &[u8]) -> u64 {
        u64::from_le_bytes(take(input))
    }
    pub fn u128(input: &mut &[u8]) -> u128 {
        u128::from_le_bytes(take(input))
    }
    pub fn i64(input: &mut &[u8]) -> i64 {
        i64::from_le_bytes(take(input))
    }
    pub fn f64(input: &mut &[u8]) -> f64 {
        f64::from_bits(u64(input))
    }
    pub fn string(input: &mut &[u8]) -> String {
        let len = u32(input) as usize;
        let (head, rest) = input.split_at(len);
        *input = rest;
        // Written from a `str` by `put_str`: always UTF-8.
        String::from_utf8_lossy(head).into_owned()
    }
    pub fn opt_string(input: &mut &[u8]) -> Option<String> {
        (u8(input) == 1).then(|| string(input))
    }
    pub fn opt_f64(input: &mut &[u8]) -> Option<f64> {
        (u8(input) == 1).then(|| f64(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Record for f64 {
        fn encode(&self, out: &mut Vec<u8>) {
            codec::put_f64(out, *self);
        }
        fn decode(input: &mut &[u8]) -> f64 {
            codec::f64(input)
        }
    }

    impl Record for (i64, String, Option<String>) {
        fn encode(&self, out: &mut Vec<u8>) {
            codec::put_i64(out, self.0);
            codec::put_str(out, &self.1);
            codec::put_opt_str(out, self.2.as_deref());
        }
        fn decode(input: &mut &[u8]) -> Self {
            (codec::i64(input), codec::string(input), codec::opt_string(input))
        }
    }

    fn scanned<T: Record>(spill: &Spill<T>) -> Vec<T> {
        let mut out = Vec::new();
        spill.scan(|r| out.push(r)).unwrap();
        out
    }

    #[test]
    fn a_spill_gives_back_what_was_pushed_in_order_across_chunks_and_tail() {
        let records: Vec<(i64, String, Option<String>)> =
            (0..1000).map(|i| (i - 500, "é".repeat(i as usize % 7), (i % 3 == 0).then(|| format!("error {i}")))).collect();
        for chunk in [1, 10, 100, 1 << 20] {
            let mut spill = Spill::new(chunk);
            for r in &records {
                spill.push(r).unwrap();
            }
            assert_eq!(spill.len(), 1000);
            assert_eq!(spill.file.is_some(), chunk < 1 << 20, "chunk {chunk}");
            assert_eq!(scanned(&spill), records, "chunk {chunk}");
        }
    }

    #[test]
    fn order_keys_order_as_total_cmp() {
        let mut v = vec![-f64::INFINITY, -1e300, -2.5, -0.0, 0.0, 1e-310, 2.5, 1e300, f64::INFINITY];
        let keys: Vec<u64> = v.iter().map(|x| order_key(*x)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        v.iter_mut().for_each(|x| assert_eq!(from_order_key(order_key(*x)).to_bits(), x.to_bits()));
    }

    fn sorted_ranks(values: &[f64], ranks: &[u64]) -> Vec<f64> {
        let mut s = values.to_vec();
        s.sort_by(f64::total_cmp);
        ranks.iter().map(|&r| s[(r - 1) as usize]).collect()
    }

    #[test]
    fn selection_past_the_limit_narrows_down_to_the_same_values() {
        // Values that share their upper bits, repeated values, and one value more than `limit` times.
        let mut values: Vec<f64> = (0..5000).map(|i| 1000.0 + f64::from(i % 997) * 0.001).collect();
        values.extend(std::iter::repeat_n(1234.5, 300));
        values.extend([-3.0, 0.0, 1e9]);
        let n = values.len() as u64;
        let ranks: Vec<u64> = vec![1, 2, nearest_rank(50.0, n), nearest_rank(95.0, n), nearest_rank(99.0, n), n];
        let source = |f: &mut dyn FnMut(f64)| -> io::Result<()> {
            values.iter().for_each(|v| f(*v));
            Ok(())
        };
        for limit in [0, 1, 7, 100, 10_000] {
            assert_eq!(at_ranks(&source, n, &ranks, limit).unwrap(), sorted_ranks(&values, &ranks), "limit {limit}");
        }
    }

    proptest! {
        #[test]
        fn selection_equals_sorting(values in proptest::collection::vec(prop_oneof![-1e4f64..1e4, (0u32..50).prop_map(f64::from)], 1..400),
                                    p in 0.0f64..=100.0, limit in 0usize..50) {
            let n = values.len() as u64;
            let ranks = [nearest_rank(p, n), 1, n];
            let source = |f: &mut dyn FnMut(f64)| -> io::Result<()> { values.iter().for_each(|v| f(*v)); Ok(()) };
            prop_assert_eq!(at_ranks(&source, n, &ranks, limit).unwrap(), sorted_ranks(&values, &ranks));
        }
    }
}
