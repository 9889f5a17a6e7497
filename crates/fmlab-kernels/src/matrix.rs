//! A weight matrix that is either dense f32 (trained weights) or stored as a GGUF file holds
//! it (f32, f16, bf16 or a ggml block format), behind one type so the layer code of
//! inference serves both.

use rayon::prelude::*;

use crate::activation::{quantize_activations_for, ActivationFormat, DotOrder, QuantizedRow};
use crate::q8::{dot_batch, dot_quantized, Batch};
use crate::quant::{dequantize_row, dot_row, QuantType};
use crate::repack::{matmul_many, repack_available, Repacked};
use crate::{matmul_strided, Error, Result, Threads};

/// Storage of a matrix's rows.
#[derive(Debug, Clone)]
pub enum MatrixData {
    Dense(Vec<f32>),
    Quant { format: QuantType, bytes: Vec<u8> },
}

/// A `rows × cols` row-major matrix; `y = W·x` maps `cols` inputs to `rows` outputs.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: MatrixData,
    /// The weights repacked for the lane-per-row kernel ([`Matrix::repack`]), which gives
    /// the same values as the row kernels, faster.
    pub repacked: Option<std::sync::Arc<Repacked>>,
}

/// Below this many input vectors the product runs row by row on the stored format; above
/// it, blocks of rows are dequantised to f32 and multiplied with `gemm`.
const GEMM_MIN_BATCH: usize = 4;
/// Rows dequantised at a time on the gemm path (bounds the scratch memory).
const ROWS_PER_TILE: usize = 2048;

impl Matrix {
    pub fn dense(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::Shape {
                what: "dense matrix",
                expected: rows.saturating_mul(cols),
                found: data.len(),
            });
        }
        Ok(Self {
            rows,
            cols,
            data: MatrixData::Dense(data),
            repacked: None,
        })
    }

    pub fn quantized(rows: usize, cols: usize, format: QuantType, bytes: Vec<u8>) -> Result<Self> {
        let expected = format.row_bytes(cols)?.checked_mul(rows);
        if expected != Some(bytes.len()) {
            return Err(Error::Shape {
                what: "quantized matrix bytes",
                expected: expected.unwrap_or(usize::MAX),
                found: bytes.len(),
            });
        }
        Ok(Self {
            rows,
            cols,
            data: MatrixData::Quant { format, bytes },
            repacked: None,
        })
    }

    /// Repacks the weights for the lane-per-row kernels (`repack.rs`) where this CPU has
    /// one (AVX-512 VNNI, or AVX2 with FMA and F16C) and the format is one it takes (Q4_0,
    /// Q4_1, Q5_0, Q8_0, Q4_K, and Q6_K for batches of 8 rows or more); products then run
    /// there, with the same results to the bit. The copy (0.75 bytes per weight
    /// for the 4-bit formats) is kept beside the stored bytes, which row lookups read.
    /// Returns whether the matrix is repacked.
    ///
    /// `FMLAB_REPACK=0` in the environment turns repacking off, `FMLAB_REPACK=avx2` takes
    /// the 256-bit kernels on an AVX-512 CPU (both for comparisons).
    pub fn repack(&mut self) -> bool {
        static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let off = *OFF.get_or_init(|| std::env::var("FMLAB_REPACK").is_ok_and(|v| v == "0"));
        if self.repacked.is_none() && !off && repack_available() {
            if let MatrixData::Quant { format, bytes } = &self.data {
                self.repacked =
                    Repacked::new(*format, bytes, self.rows, self.cols).map(std::sync::Arc::new);
            }
        }
        self.repacked.is_some()
    }

    /// The storage format's name.
    pub fn format_name(&self) -> &'static str {
        match &self.data {
            MatrixData::Dense(_) => "f32",
            MatrixData::Quant { format, .. } => format.name(),
        }
    }

    /// Row `i` as f32.
    pub fn row(&self, i: usize, out: &mut [f32]) -> Result<()> {
        if i >= self.rows || out.len() != self.cols {
            return Err(Error::Shape {
                what: "matrix row",
                expected: self.cols,
                found: out.len(),
            });
        }
        match &self.data {
            MatrixData::Dense(d) => out.copy_from_slice(&d[i * self.cols..(i + 1) * self.cols]),
            MatrixData::Quant { format, bytes } => {
                let rb = bytes.len() / self.rows;
                dequantize_row(*format, &bytes[i * rb..(i + 1) * rb], out)?;
            }
        }
        Ok(())
    }

    /// `y[t] = W · x[t]` for `n = x.len() / cols` input vectors: `x` is `n × cols`, `y` is
    /// `n × rows`, both row-major.
    pub fn matmul(&self, x: &[f32], y: &mut [f32], threads: Threads) -> Result<()> {
        if self.cols == 0 || !x.len().is_multiple_of(self.cols) {
            return Err(Error::Shape {
                what: "matmul input",
                expected: self.cols,
                found: x.len(),
            });
        }
        let n = x.len() / self.cols;
        if y.len() != n * self.rows {
            return Err(Error::Shape {
                what: "matmul output",
                expected: n * self.rows,
                found: y.len(),
            });
        }
        if n == 0 || self.rows == 0 {
            return Ok(());
        }
        if let Some(repacked) = &self.repacked {
            if repacked.matmul(x, y) {
                return Ok(());
            }
        }
        match &self.data {
            MatrixData::Quant { format, bytes }
                if format.activation_format() != ActivationFormat::F32 =>
            {
                self.matmul_quantized(*format, bytes, x, y, n);
                Ok(())
            }
            _ if n >= GEMM_MIN_BATCH => self.matmul_gemm(x, y, n, threads),
            _ => {
                self.matmul_rows(x, y, n);
                Ok(())
            }
        }
    }

    /// `ys[m] = mats[m] · x` for matrices that read the same input rows (a layer's query,
    /// key and value maps; its gate and up maps). The repacked ones that take the batch
    /// share one quantization of `x` per kind of input and run as one parallel job
    /// ([`crate::repack::matmul_many`]); the others run one by one. The values are those
    /// of [`Matrix::matmul`] for each.
    pub fn matmul_many(
        mats: &[&Matrix],
        x: &[f32],
        ys: &mut [&mut [f32]],
        threads: Threads,
    ) -> Result<()> {
        if mats.len() != ys.len() {
            return Err(Error::Shape {
                what: "products of one input",
                expected: mats.len(),
                found: ys.len(),
            });
        }
        let mut joint: Vec<(&Matrix, &Repacked)> = Vec::new();
        let mut joint_ys: Vec<&mut [f32]> = Vec::new();
        let mut alone: Vec<(&Matrix, &mut [f32])> = Vec::new();
        for (m, y) in mats.iter().zip(ys.iter_mut()) {
            let fits = m.cols > 0
                && x.len().is_multiple_of(m.cols)
                && y.len() == x.len() / m.cols * m.rows;
            match &m.repacked {
                Some(r) if fits && !x.is_empty() && r.accepts(x.len() / m.cols) => {
                    joint.push((m, r));
                    joint_ys.push(y);
                }
                _ => alone.push((m, y)),
            }
        }
        let repacked: Vec<&Repacked> = joint.iter().map(|&(_, r)| r).collect();
        if !matmul_many(&repacked, x, &mut joint_ys) {
            // Matrices of different widths: each product on its own.
            for ((m, _), y) in joint.iter().zip(joint_ys.iter_mut()) {
                m.matmul(x, y, threads)?;
            }
        }
        for (m, y) in alone {
            m.matmul(x, y, threads)?;
        }
        Ok(())
    }

    /// Row-by-row f32 products (few inputs, f32/f16/bf16 storage).
    fn matmul_rows(&self, x: &[f32], y: &mut [f32], n: usize) {
        let (rows, cols) = (self.rows, self.cols);
        let row_dot = |r: usize, xv: &[f32]| -> f32 {
            match &self.data {
                MatrixData::Dense(d) => dot_f32(&d[r * cols..(r + 1) * cols], xv),
                MatrixData::Quant { format, bytes } => {
                    let rb = bytes.len() / rows;
                    dot_row(*format, &bytes[r * rb..(r + 1) * rb], xv)
                }
            }
        };
        for t in 0..n {
            let xv = &x[t * cols..(t + 1) * cols];
            let yt = &mut y[t * rows..(t + 1) * rows];
            // Rows in chunks so that each task does enough work to pay for the scheduling.
            yt.par_chunks_mut(64).enumerate().for_each(|(c, out)| {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = row_dot(c * 64 + i, xv);
                }
            });
        }
    }

    /// Quantized weights times quantized activations, as ggml computes it: each input row
    /// is quantized once, then every weight row is dotted with every input while it is hot
    /// in cache.
    fn matmul_quantized(
        &self,
        format: QuantType,
        bytes: &[u8],
        x: &[f32],
        y: &mut [f32],
        n: usize,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let act = format.activation_format();
        let (order, ordered_rows) = batch_order(format, rows, n);
        let inputs: Vec<QuantizedRow> = x
            .par_chunks(cols)
            .enumerate()
            .map(|(t, xv)| {
                let o = if t < ordered_rows {
                    order
                } else {
                    DotOrder::Row
                };
                quantize_activations_for(xv, act, o)
            })
            .collect();
        let rb = bytes.len() / rows;
        const CHUNK: usize = 32;
        if n == 1 {
            // On the decoding pool (no wake-up per product), each task's rows read two ahead
            // of the one computed (see `repack::fetch_lines`).
            let a = &inputs[0];
            let pieces = crate::pool::Pieces::new(y, CHUNK);
            crate::pool::for_each(rows.div_ceil(CHUNK), |c| {
                // SAFETY: each task takes its own piece c.
                let out = unsafe { pieces.piece(c) };
                let len = out.len();
                for (i, o) in out.iter_mut().enumerate() {
                    let r = c * CHUNK + i;
                    if i + 2 < len {
                        crate::repack::fetch_lines(bytes, (r + 2) * rb, rb);
                    }
                    *o = dot_quantized(format, &bytes[r * rb..(r + 1) * rb], a);
                }
            });
            return;
        }
        // Output transposed (rows × n) so that tasks own contiguous memory, then scattered.
        let mut yt = vec![0f32; rows * n];
        let batch = Batch::new(format, &inputs);
        yt.par_chunks_mut(CHUNK * n)
            .enumerate()
            .for_each(|(c, out)| {
                let first = c * CHUNK;
                let count = out.len() / n;
                dot_batch(&bytes[first * rb..(first + count) * rb], rb, &batch, out);
            });
        // The transpose back, in tiles (16 inputs × 16 rows: sequential writes, 16 read
        // streams), in parallel over inputs; a plain loop over one of the two strides
        // misses the cache on every element.
        const TILE: usize = 16;
        y.par_chunks_mut(rows * TILE)
            .enumerate()
            .for_each(|(c, out)| {
                let t0 = c * TILE;
                let inputs = out.len() / rows;
                for r0 in (0..rows).step_by(TILE) {
                    for t in 0..inputs {
                        let src = &yt[r0 * n + t0 + t..];
                        let dst = &mut out[t * rows + r0..t * rows + (r0 + TILE).min(rows)];
                        for (k, v) in dst.iter_mut().enumerate() {
                            *v = src[k * n];
                        }
                    }
                }
            });
    }

    fn matmul_gemm(&self, x: &[f32], y: &mut [f32], n: usize, threads: Threads) -> Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        match &self.data {
            MatrixData::Dense(w) => matmul_strided(y, rows, x, w, n, cols, rows, threads),
            MatrixData::Quant { format, bytes } => {
                let rb = bytes.len() / rows;
                let mut tile = vec![0f32; ROWS_PER_TILE.min(rows) * cols];
                let mut start = 0;
                while start < rows {
                    let count = ROWS_PER_TILE.min(rows - start);
                    let t = &mut tile[..count * cols];
                    t.par_chunks_mut(cols)
                        .enumerate()
                        .try_for_each(|(i, out)| {
                            let r = start + i;
                            dequantize_row(*format, &bytes[r * rb..(r + 1) * rb], out)
                        })?;
                    matmul_strided(&mut y[start..], rows, x, t, n, cols, count, threads)?;
                    start += count;
                }
                Ok(())
            }
        }
    }
}

/// `Σ a·b` with eight accumulators (vectorised by the compiler).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    sum
}

/// The kernel ggml's CPU backend (AVX2) runs for `n` activation rows times a `rows`-row
/// weight matrix in `format`, as the order the first `count` rows follow (the rest use the
/// one-row kernels). Q4_K matrices whose rows come in eights are repacked at load time and
/// multiplied four activation rows at a time; other K-quants go through the tiled kernel
/// from 8 rows on.
fn batch_order(format: QuantType, rows: usize, n: usize) -> (DotOrder, usize) {
    match format {
        QuantType::Q4_K if rows.is_multiple_of(8) => {
            (DotOrder::Repacked, if n > 3 { n - n % 4 } else { 0 })
        }
        QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K if n >= 8 => (DotOrder::Tiled, n),
        _ => (DotOrder::Row, 0),
    }
}
