//! The token filter of a v2 block: a bloom filter over the words of its lines and metadata
//! values, so a search for a literal skips the blocks that cannot hold it.
//!
//! A token is a maximal run of bytes in `[0-9A-Za-z_]` or `0x80..=0xFF` (so UTF-8 words stay
//! whole). Its hash is FNV-1a 64 of its bytes, finished with splitmix64's mixer. A filter over
//! `n` distinct hashes has `m = 8 × bytes` bits where `bytes` is `ceil(n × BITS_PER_TOKEN / 8)`
//! rounded up to a multiple of 8 (no bytes when `n = 0`); each hash `h` sets the bits
//! `(lo + i × hi) mod m` for `i` in `0..HASHES`, with `lo` its low 32 bits and `hi` its high
//! 32 bits with the lowest bit set; bit `p` is bit `p mod 8` (least significant first) of
//! byte `p / 8`. VERIFY.md repeats this; verify rebuilds every filter and compares bytes.
//!
//! Owns: [`TokensBuilder`], [`may_contain`] and [`needle_tokens`]. Must not: do I/O.

/// Filter bits per distinct token: with [`HASHES`] probes, about 1% of blocks that lack a
/// token are read anyway. Part of the format.
pub const BITS_PER_TOKEN: usize = 10;

/// Probes per token (the optimum for 10 bits per token is 7). Part of the format.
pub const HASHES: u64 = 7;

/// Whether `b` belongs to a token.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The tokens of `bytes`, in order.
pub fn tokens(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| !is_token_byte(b))
        .filter(|t| !t.is_empty())
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The hash of one token.
pub fn hash(token: &[u8]) -> u64 {
    finish(token.iter().fold(FNV_OFFSET, |h, &b| fnv(h, b)))
}

fn fnv(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

/// splitmix64's mixer over the FNV-1a state.
fn finish(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The distinct token hashes of a block being gathered: an open-addressing set (linear
/// probing on the hash's own low bits, which the mixer makes uniform; 0 marks an empty slot,
/// so a hash of 0 is kept aside), so a token repeated on every line costs a lookup, not a
/// place in a list to sort.
#[derive(Debug, Default, Clone)]
pub struct TokensBuilder {
    slots: Vec<u64>,
    len: usize,
    zero: bool,
}

/// Slots of a new set; it doubles when half full.
const FIRST_SLOTS: usize = 256;

impl TokensBuilder {
    /// Adds every token of `bytes` (a line or a metadata value).
    /// One pass over the bytes, hashing as it goes (the writer runs this over every line).
    pub fn add(&mut self, bytes: &[u8]) {
        let mut h = FNV_OFFSET;
        let mut in_token = false;
        for &b in bytes {
            if is_token_byte(b) {
                h = fnv(h, b);
                in_token = true;
            } else if in_token {
                self.insert(finish(h));
                (h, in_token) = (FNV_OFFSET, false);
            }
        }
        if in_token {
            self.insert(finish(h));
        }
    }

    fn insert(&mut self, h: u64) {
        if h == 0 {
            self.zero = true;
            return;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = h;
                    self.len += 1;
                    return;
                }
                s if s == h => return,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        self.len = 0;
        for h in old.into_iter().filter(|&h| h != 0) {
            self.insert(h);
        }
    }

    /// The filter bytes.
    pub fn encode(&mut self) -> Vec<u8> {
        let n = self.len + usize::from(self.zero);
        let bytes = (n * BITS_PER_TOKEN).div_ceil(8).next_multiple_of(8);
        let mut filter = vec![0u8; bytes];
        let m = bytes as u64 * 8;
        let zero = self.zero.then_some(0);
        for h in self.slots.iter().copied().filter(|&h| h != 0).chain(zero) {
            for p in probes(h, m) {
                filter[(p / 8) as usize] |= 1 << (p % 8);
            }
        }
        filter
    }
}

/// The bits `(lo + i × hi) mod m` for `i` in `0..HASHES`, walked as `p + step mod m` so that
/// a probe costs an addition rather than a division (the same bits: the format's formula).
fn probes(h: u64, m: u64) -> impl Iterator<Item = u64> {
    let (lo, hi) = (h & 0xffff_ffff, (h >> 32) | 1);
    let step = hi % m;
    let mut p = lo % m;
    (0..HASHES).map(move |_| {
        let out = p;
        p += step;
        if p >= m {
            p -= m;
        }
        out
    })
}

/// Whether a block whose filter is `filter` may hold `token` (false: it certainly does not).
pub fn may_contain(filter: &[u8], token_hash: u64) -> bool {
    let m = filter.len() as u64 * 8;
    m > 0 && probes(token_hash, m).all(|p| filter[(p / 8) as usize] & (1 << (p % 8)) != 0)
}

/// The tokens every line containing `needle` holds as whole tokens: the runs of `needle` with
/// a non-token byte of the needle on both sides (a run at either end may continue in the line).
pub fn needle_tokens(needle: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &b) in needle.iter().enumerate() {
        match (is_token_byte(b), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if s > 0 {
                    out.push(&needle[s..i]);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// The hashes of [`needle_tokens`] of `needle` as a query holds it: text decoded from the
/// stored line, where bytes that are not UTF-8 read as U+FFFD. A token holding U+FFFD may
/// stand for other bytes in the record, so it is left out; every other token of a needle a
/// decoded line contains is a whole token of the stored line.
pub fn needle_hashes(needle: &str) -> Vec<u64> {
    needle_tokens(needle.as_bytes())
        .into_iter()
        .filter(|t| !t.windows(3).any(|w| w == "\u{fffd}".as_bytes()))
        .map(hash)
        .collect()
}

/// The hashes of every token of `value`: a whole metadata value holds all of its runs as
/// whole tokens.
pub fn value_hashes(value: &str) -> Vec<u64> {
    tokens(value.as_bytes()).map(hash).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_added_token_is_found() {
        let mut b = TokensBuilder::default();
        let line = "Failed password for invalid user ädmin from 203.0.113.7 port 22 ssh2";
        b.add(line.as_bytes());
        b.add(b"4bf92f3577b34da6a3ce929d0e0e4736");
        let f = b.encode();
        for t in tokens(line.as_bytes()).chain([&b"4bf92f3577b34da6a3ce929d0e0e4736"[..]]) {
            assert!(may_contain(&f, hash(t)), "{}", String::from_utf8_lossy(t));
        }
        assert!(tokens(line.as_bytes()).any(|t| t == "ädmin".as_bytes()));
        assert_eq!(f.len() % 8, 0);
    }

    #[test]
    fn absent_tokens_are_mostly_refused_and_an_empty_filter_holds_nothing() {
        let mut b = TokensBuilder::default();
        for i in 0..1000 {
            b.add(format!("word{i}").as_bytes());
        }
        let f = b.encode();
        assert_eq!(f.len(), 1256);
        let false_positives = (0..10_000)
            .filter(|i| may_contain(&f, hash(format!("other{i}").as_bytes())))
            .count();
        assert!(false_positives < 300, "{false_positives} of 10000");
        assert!(!may_contain(&TokensBuilder::default().encode(), hash(b"x")));
    }

    #[test]
    fn the_one_pass_tokenizer_hashes_what_tokens_splits() {
        let texts: [&[u8]; 7] = [
            b"",
            b"a",
            b" a b ",
            b"x\xff\xfey",
            b"__init__()",
            b"1.2.3.4:22",
            "é-ü ".as_bytes(),
        ];
        for text in texts {
            let mut b = TokensBuilder::default();
            b.add(text);
            let mut split: Vec<u64> = tokens(text).map(hash).collect();
            split.sort_unstable();
            split.dedup();
            assert_eq!(b.distinct(), split, "{text:?}");
        }
    }

    impl TokensBuilder {
        fn distinct(&self) -> Vec<u64> {
            let mut v: Vec<u64> = self.slots.iter().copied().filter(|&h| h != 0).collect();
            v.extend(self.zero.then_some(0));
            v.sort_unstable();
            v
        }
    }

    /// The format's filter, computed the plain way: the sorted distinct hashes, each setting
    /// its probes.
    fn reference(hashes: &[u64]) -> Vec<u8> {
        let mut h = hashes.to_vec();
        h.sort_unstable();
        h.dedup();
        let bytes = (h.len() * BITS_PER_TOKEN).div_ceil(8).next_multiple_of(8);
        let mut filter = vec![0u8; bytes];
        let m = bytes as u64 * 8;
        for &x in &h {
            let (lo, hi) = (x & 0xffff_ffff, (x >> 32) | 1);
            for i in 0..HASHES {
                let p = (lo + i * hi) % m;
                filter[(p / 8) as usize] |= 1 << (p % 8);
            }
        }
        filter
    }

    #[test]
    fn the_set_builds_the_formats_filter_through_growth_and_repeats() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for n in [0usize, 1, 127, 128, 129, 5000] {
            let mut b = TokensBuilder::default();
            let mut all = Vec::new();
            for i in 0..n {
                state = finish(state.wrapping_add(i as u64));
                // Every third hash repeats an earlier one; a hash of 0 now and then.
                let h = match i % 3 {
                    2 => all[i / 2],
                    _ if i % 97 == 0 => 0,
                    _ => state,
                };
                b.insert(h);
                all.push(h);
            }
            assert_eq!(b.encode(), reference(&all), "{n} hashes");
            // Encoding leaves the set as it was: a block that grows is encoded again.
            assert_eq!(b.encode(), reference(&all));
        }
    }

    #[test]
    fn probes_are_the_formats_formula() {
        for (h, m) in [(u64::MAX, 64), (0x1234_5678_9abc_def0, 1256 * 8), (7, 8)] {
            let (lo, hi) = (h & 0xffff_ffff, (h >> 32) | 1);
            let formula: Vec<u64> = (0..HASHES).map(|i| (lo + i * hi) % m).collect();
            assert_eq!(probes(h, m).collect::<Vec<_>>(), formula);
        }
    }

    #[test]
    fn a_needle_token_holding_a_replacement_character_is_not_required() {
        assert_eq!(needle_hashes("a x\u{fffd}y b"), Vec::<u64>::new());
        assert_eq!(needle_hashes("a xé b"), [hash("xé".as_bytes())]);
    }

    #[test]
    fn only_bounded_runs_of_a_needle_are_guaranteed_tokens() {
        assert_eq!(needle_tokens(b"foo bar"), Vec::<&[u8]>::new());
        assert_eq!(needle_tokens(b"user root from"), [&b"root"[..]]);
        assert_eq!(needle_tokens(b" 10.0.0.1 "), [&b"10"[..], b"0", b"0", b"1"]);
        assert_eq!(needle_tokens(b"\"id\":\"abc\""), [&b"id"[..], b"abc"]);
    }
}
