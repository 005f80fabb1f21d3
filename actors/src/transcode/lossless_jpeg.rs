//! A lossless JPEG encoder (ITU-T T.81 process 14, Huffman coded, point transform 0), for
//! the transfer syntaxes 1.2.840.10008.1.2.4.57 and .70 (selection value 1), which the
//! dicom-rs codecs only decode. One frame of 1 or 3 samples per pixel (interleaved), 2 to 16
//! bits per sample; a Huffman table optimal for the frame (Annex K.2).

/// One frame's samples: `rows × columns × samples` values, interleaved.
pub struct Frame<'a> {
    pub rows: usize,
    pub columns: usize,
    pub samples: usize,
    /// Bits per sample (the JPEG precision): 2 to 16.
    pub precision: u8,
    pub values: &'a [u16],
}

/// Encodes a frame with predictor 1 (the sample on the left).
pub fn encode(frame: &Frame) -> Vec<u8> {
    let diffs = differences(frame);
    let mut freq = [0u32; 17];
    for &d in &diffs {
        freq[category(d) as usize] += 1;
    }
    let table = HuffmanTable::optimal(&freq);
    let mut out = Vec::with_capacity(diffs.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    // SOF3: precision, lines, samples per line, components (no subsampling, no table).
    let nf = frame.samples as u8;
    out.extend_from_slice(&[0xFF, 0xC3]);
    out.extend_from_slice(&(8 + 3 * nf as u16).to_be_bytes());
    out.push(frame.precision);
    out.extend_from_slice(&(frame.rows as u16).to_be_bytes());
    out.extend_from_slice(&(frame.columns as u16).to_be_bytes());
    out.push(nf);
    for c in 0..nf {
        out.extend_from_slice(&[c + 1, 0x11, 0]);
    }
    // DHT: one DC table (class 0, id 0), shared by the components.
    out.extend_from_slice(&[0xFF, 0xC4]);
    out.extend_from_slice(&((2 + 1 + 16 + table.values.len()) as u16).to_be_bytes());
    out.push(0x00);
    out.extend_from_slice(&table.counts);
    out.extend_from_slice(&table.values);
    // SOS: components with table 0, Ss = predictor 1, Se = 0, Ah/Al = 0.
    out.extend_from_slice(&[0xFF, 0xDA]);
    out.extend_from_slice(&(6 + 2 * nf as u16).to_be_bytes());
    out.push(nf);
    for c in 0..nf {
        out.extend_from_slice(&[c + 1, 0x00]);
    }
    out.extend_from_slice(&[1, 0, 0]);
    let mut bits = BitWriter { out, acc: 0, n: 0 };
    for &d in &diffs {
        let ssss = category(d);
        let (code, len) = table.codes[ssss as usize];
        bits.put(code as u32, len);
        if ssss > 0 && ssss < 16 {
            let extra = if d > 0 { d } else { d - 1 };
            bits.put((extra as u32) & ((1 << ssss) - 1), ssss);
        }
    }
    let mut out = bits.finish();
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// The prediction differences, in scan order, as the signed values T.81 codes (H.1.2.1:
/// modulo 2^16, the value 32768 standing alone).
fn differences(frame: &Frame) -> Vec<i32> {
    let (rows, cols, ns) = (frame.rows, frame.columns, frame.samples);
    let v = frame.values;
    let first = 1i32 << (frame.precision - 1);
    let mut diffs = Vec::with_capacity(v.len());
    for y in 0..rows {
        for x in 0..cols {
            for c in 0..ns {
                let at = |yy: usize, xx: usize| v[(yy * cols + xx) * ns + c] as i32;
                let predicted = match (y, x) {
                    (0, 0) => first,
                    (0, _) => at(0, x - 1),
                    (_, 0) => at(y - 1, 0),
                    _ => at(y, x - 1),
                };
                let d = (at(y, x) - predicted).rem_euclid(1 << 16);
                diffs.push(if d >= 32768 { d - 65536 } else { d });
            }
        }
    }
    // -32768 is coded as 32768 (category 16, no extra bits).
    for d in &mut diffs {
        if *d == -32768 {
            *d = 32768;
        }
    }
    diffs
}

/// SSSS: the number of bits of |d| (0 to 16).
fn category(d: i32) -> u8 {
    (32 - d.unsigned_abs().leading_zeros()) as u8
}

/// A Huffman table in JPEG's form (counts per code length, values) and its codes.
struct HuffmanTable {
    counts: [u8; 16],
    values: Vec<u8>,
    /// (code, length) per category.
    codes: [(u16, u8); 17],
}

impl HuffmanTable {
    /// The optimal table for these frequencies, code lengths limited to 16 (T.81 K.2).
    fn optimal(freq: &[u32; 17]) -> HuffmanTable {
        // One reserved symbol (index 17) keeps the all-ones code unused.
        let mut f: Vec<u64> = freq.iter().map(|&x| x as u64).collect();
        f.push(1);
        let n = f.len();
        let mut size = vec![0usize; n];
        let mut others: Vec<Option<usize>> = vec![None; n];
        loop {
            // The two least frequent (non-zero) symbols, the larger index first on ties.
            let mut v1: Option<usize> = None;
            for i in 0..n {
                if f[i] > 0 && v1.is_none_or(|j| f[i] <= f[j]) {
                    v1 = Some(i);
                }
            }
            let v1 = v1.expect("at least the reserved symbol");
            let mut v2: Option<usize> = None;
            for i in 0..n {
                if i != v1 && f[i] > 0 && v2.is_none_or(|j| f[i] <= f[j]) {
                    v2 = Some(i);
                }
            }
            let Some(v2) = v2 else { break };
            f[v1] += f[v2];
            f[v2] = 0;
            let mut i = v1;
            size[i] += 1;
            while let Some(next) = others[i] {
                i = next;
                size[i] += 1;
            }
            others[i] = Some(v2);
            let mut i = v2;
            size[i] += 1;
            while let Some(next) = others[i] {
                i = next;
                size[i] += 1;
            }
        }
        let mut bits = [0usize; 33];
        for &s in &size {
            if s > 0 {
                bits[s] += 1;
            }
        }
        // Limit the lengths to 16 (K.3).
        let mut i = 32;
        while i > 16 {
            while bits[i] > 0 {
                let mut j = i - 2;
                while bits[j] == 0 {
                    j -= 1;
                }
                bits[i] -= 2;
                bits[i - 1] += 1;
                bits[j + 1] += 2;
                bits[j] -= 1;
            }
            i -= 1;
        }
        // Drop the reserved symbol (one of the longest codes).
        let mut longest = 16;
        while bits[longest] == 0 {
            longest -= 1;
        }
        bits[longest] -= 1;
        // Values by increasing code length (then by category).
        let mut order: Vec<usize> = (0..17).filter(|&s| size[s] > 0).collect();
        order.sort_by_key(|&s| (size[s], s));
        let mut counts = [0u8; 16];
        for (len, count) in counts.iter_mut().enumerate() {
            *count = bits[len + 1] as u8;
        }
        let values: Vec<u8> = order.iter().map(|&s| s as u8).collect();
        // Canonical codes (C.2).
        let mut codes = [(0u16, 0u8); 17];
        let mut code = 0u16;
        let mut k = 0;
        for (len, &count) in counts.iter().enumerate() {
            for _ in 0..count {
                codes[values[k] as usize] = (code, len as u8 + 1);
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        HuffmanTable {
            counts,
            values,
            codes,
        }
    }
}

/// Bits, most significant first, with a zero byte stuffed after every 0xFF.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, bits: u32, len: u8) {
        self.acc = (self.acc << len) | (bits as u64 & ((1u64 << len) - 1));
        self.n += len as u32;
        while self.n >= 8 {
            self.n -= 8;
            let byte = (self.acc >> self.n) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
    }

    /// Pads the last byte with ones.
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n as u8;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(category(0), 0);
        assert_eq!(category(1), 1);
        assert_eq!(category(-1), 1);
        assert_eq!(category(255), 8);
        assert_eq!(category(-256), 9);
        assert_eq!(category(32768), 16);
    }

    #[test]
    fn huffman_codes_are_a_prefix_code_without_the_all_ones_code() {
        let mut freq = [0u32; 17];
        for (i, f) in freq.iter_mut().enumerate() {
            *f = 1 << (16 - i.min(16));
        }
        let t = HuffmanTable::optimal(&freq);
        let codes: Vec<(u16, u8)> = t.codes.iter().copied().filter(|c| c.1 > 0).collect();
        assert_eq!(codes.len(), 17);
        for (i, &(a, la)) in codes.iter().enumerate() {
            assert!(la <= 16);
            assert_ne!(a as u32, (1u32 << la) - 1, "all-ones code");
            for &(b, lb) in &codes[i + 1..] {
                let l = la.min(lb);
                assert_ne!(
                    a >> (la - l),
                    b >> (lb - l),
                    "one code is a prefix of another"
                );
            }
        }
    }
}
