//! The numeric engine under the decoder: matrix products through the `gemm` crate (`matmul`,
//! `matmul_strided`, and `gemm_into`, generic over f32/f64 with any strides, which every
//! product of the training path uses); ggml's block formats, their dequantisation and dot
//! products (`quant.rs`, `q8.rs`, run-time SIMD paths in `simd.rs`), their quantizers with
//! ggml's reference arithmetic (`quantize.rs`); `Matrix`, a weight
//! dense or quantized behind one type (`matrix.rs`); and the row kernels of inference
//! (`ops.rs`: norms, activations, RoPE, causal attention over a KV cache, ggml's exp).
//!
//! Why our own engine rather than a tensor framework: see DESIGN.md. Matrix products go
//! through the `gemm` crate, which reaches 85–120 GFLOP/s on the 2-core development machine.

mod activation;
mod kbatch;
mod matrix;
mod ops;
mod peak;
pub mod pool;
mod q8;
mod quant;
mod quantize;
mod repack;
mod simd;

pub use activation::{
    quantize_activations, quantize_activations_for, ActivationFormat, DotOrder, QuantizedRow,
};
pub use matrix::{Matrix, MatrixData};
pub use ops::*;
pub use peak::{measure_peak_flops, peak_flops, peak_flops_at_least, Peak, PeakSource};
pub use q8::{dot_batch, dot_quantized, dot_quantized_portable, Batch};
pub use quant::{dequantize_block, dequantize_row, dot_row, f16_to_f32, f32_to_f16, QuantType};
pub use quantize::{f32_to_bf16, quantize_q8_0, quantize_row, quantize_row_into};
pub use repack::{repack_available, Repacked};

/// Errors: shapes that do not fit the buffers they describe, formats without a kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    Quant(String),
    #[error("matmul: {what} holds {found} elements, but the shape needs {expected}")]
    Shape {
        what: &'static str,
        expected: usize,
        found: usize,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// How many threads a kernel may use: 0 means all of rayon's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads(pub usize);

/// `c[m×n] = a[m×k] · b[k×n]` (row-major, contiguous), overwriting `c`.
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    threads: Threads,
) -> Result<()> {
    let check = |what, expected: Option<usize>, found| match expected {
        Some(e) if e == found => Ok(()),
        _ => Err(Error::Shape {
            what,
            expected: expected.unwrap_or(usize::MAX),
            found,
        }),
    };
    check("a", m.checked_mul(k), a.len())?;
    check("b", k.checked_mul(n), b.len())?;
    check("c", m.checked_mul(n), c.len())?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        c.fill(0.0);
        return Ok(());
    }
    // SAFETY: the three slices were checked above to hold exactly m×k, k×n and m×n
    // elements; the strides describe contiguous row-major storage within them, and `c`
    // is borrowed mutably so it aliases neither input.
    unsafe {
        gemm_raw(
            c.as_mut_ptr(),
            n as isize,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            [m, n, k],
            threads,
        )
    };
    Ok(())
}

/// `dst[i·dst_rs + j] = Σ_p lhs[i·lhs_rs + p·lhs_cs] · rhs[p·rhs_rs + j·rhs_cs]` for
/// `[m, n, k]`, through the `gemm` crate (unit column stride in `dst`).
///
/// # Safety
/// Every address the strides and sizes reach must lie in the allocations, and `dst` must
/// not overlap the inputs.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    dst: *mut f32,
    dst_rs: isize,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
    [m, n, k]: [usize; 3],
    threads: Threads,
) {
    let parallelism = match threads.0 {
        1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            false,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// A strided matrix operand: `data[r·rs + c·cs]` is element (r, c) of a `rows × cols`
/// matrix.
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<T> Strided<'_, T> {
    /// Whether every element the strides reach lies in `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1)
                .checked_mul(self.rs)
                .and_then(|a| {
                    (self.cols - 1)
                        .checked_mul(self.cs)
                        .and_then(|b| a.checked_add(b))
                })
                .is_some_and(|last| last < self.data.len())
    }
}

/// `c = (c if accumulate) + a · b` for f32 or f64 through the `gemm` crate, with any
/// strides: `c` is `a.rows × b.cols` at `c[r·c_rs + col·c_cs]`. The training path's
/// products (including the transposed ones of the backward pass) go through here. Checked:
/// shapes must agree and every stride must stay inside its slice.
#[allow(clippy::too_many_arguments)]
pub fn gemm_into<T: Copy + 'static>(
    c: &mut [T],
    c_rs: usize,
    c_cs: usize,
    a: Strided<T>,
    b: Strided<T>,
    accumulate: bool,
    threads: Threads,
) -> Result<()> {
    let is_float = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        || std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>();
    let out = Strided {
        data: &*c,
        rows: a.rows,
        cols: b.cols,
        rs: c_rs,
        cs: c_cs,
    };
    if !is_float || a.cols != b.rows || !a.fits() || !b.fits() || !out.fits() {
        return Err(Error::Shape {
            what: "gemm operands",
            expected: a.cols,
            found: b.rows,
        });
    }
    if a.rows == 0 || b.cols == 0 {
        return Ok(());
    }
    let parallelism = match threads.0 {
        1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    let one = |x: f64| -> T {
        // SAFETY: T is f32 or f64 (checked above); both are plain numbers of their size.
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
            let v = x as f32;
            unsafe { std::mem::transmute_copy(&v) }
        } else {
            unsafe { std::mem::transmute_copy(&x) }
        }
    };
    // SAFETY: the operands' strides were checked to stay inside their slices, `c` is
    // borrowed mutably (no overlap with `a` or `b`), and T is a type gemm supports.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            c.as_mut_ptr(),
            c_cs as isize,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            one(if accumulate { 1.0 } else { 0.0 }),
            one(1.0),
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// `y[t·y_stride + j] = Σ_k x[t·k_len + k] · w[j·k_len + k]` for `t < n`, `j < w_rows`:
/// the product of `n` input rows with the transpose of a row-major weight block, written
/// into a column block of a wider output (`y_stride ≥ w_rows`).
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided(
    y: &mut [f32],
    y_stride: usize,
    x: &[f32],
    w: &[f32],
    n: usize,
    k_len: usize,
    w_rows: usize,
    threads: Threads,
) -> Result<()> {
    let need = |what, expected: usize, found| {
        if found < expected {
            Err(Error::Shape {
                what,
                expected,
                found,
            })
        } else {
            Ok(())
        }
    };
    need("x", n * k_len, x.len())?;
    need("w", w_rows * k_len, w.len())?;
    if n == 0 || w_rows == 0 {
        return Ok(());
    }
    need("y", (n - 1) * y_stride + w_rows, y.len())?;
    if y_stride < w_rows {
        return Err(Error::Shape {
            what: "y stride",
            expected: w_rows,
            found: y_stride,
        });
    }
    if k_len == 0 {
        for t in 0..n {
            y[t * y_stride..t * y_stride + w_rows].fill(0.0);
        }
        return Ok(());
    }
    // SAFETY: the checks above guarantee every element addressed — y up to
    // (n−1)·y_stride + w_rows, x up to n·k_len, w up to w_rows·k_len — lies inside the
    // slices; `y` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm_raw(
            y.as_mut_ptr(),
            y_stride as isize,
            x.as_ptr(),
            k_len as isize,
            1,
            w.as_ptr(),
            1,
            k_len as isize,
            [n, w_rows, k_len],
            threads,
        )
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn gemm_into_with_strides_and_accumulation() {
        // a (2×3) · bᵀ where b is stored 4×3: c (2×4).
        let a: Vec<f64> = (0..6).map(|x| x as f64 - 2.0).collect();
        let b: Vec<f64> = (0..12).map(|x| (x as f64) * 0.5).collect();
        let mut c = vec![1.0f64; 8];
        let sa = Strided {
            data: &a,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        let sb = Strided {
            data: &b,
            rows: 3,
            cols: 4,
            rs: 1,
            cs: 3,
        };
        gemm_into(&mut c, 4, 1, sa, sb, true, Threads(1)).unwrap();
        for r in 0..2 {
            for col in 0..4 {
                let want: f64 = 1.0 + (0..3).map(|k| a[r * 3 + k] * b[col * 3 + k]).sum::<f64>();
                assert_eq!(c[r * 4 + col], want);
            }
        }
        // f32, overwriting.
        let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&x| x as f32).collect();
        let mut c32 = vec![7.0f32; 8];
        let sa = Strided {
            data: &a32,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        let sb = Strided {
            data: &b32,
            rows: 3,
            cols: 4,
            rs: 1,
            cs: 3,
        };
        gemm_into(&mut c32, 4, 1, sa, sb, false, Threads(1)).unwrap();
        assert_eq!(c32[0] as f64, c[0] - 1.0);
        // Strides that leave a slice, mismatched shapes, unsupported types: errors.
        let bad = Strided {
            data: &b,
            rows: 3,
            cols: 4,
            rs: 1,
            cs: 4,
        };
        let sa64 = Strided {
            data: &a,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        assert!(gemm_into(&mut c, 4, 1, sa64, bad, true, Threads(1)).is_err());
        let wrong = Strided {
            data: &b,
            rows: 4,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        assert!(gemm_into(&mut c, 4, 1, sa64, wrong, true, Threads(1)).is_err());
        let ints = [1u8; 4];
        let si = Strided {
            data: &ints[..],
            rows: 2,
            cols: 2,
            rs: 2,
            cs: 1,
        };
        let mut ci = [0u8; 4];
        assert!(gemm_into(&mut ci, 2, 1, si, si, false, Threads(1)).is_err());
    }

    use super::*;

    #[test]
    fn matches_the_naive_product() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5).collect();
        let mut c = vec![f32::NAN; m * n];
        matmul(&mut c, &a, &b, m, k, n, Threads(1)).unwrap();
        for i in 0..m {
            for j in 0..n {
                let expected: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!((c[i * n + j] - expected).abs() < 1e-4, "{i},{j}");
            }
        }
        assert!(matches!(
            matmul(&mut c, &a, &b, m, k + 1, n, Threads(1)),
            Err(Error::Shape { what: "a", .. })
        ));
    }

    #[test]
    fn strided_product_and_dense_matrix() {
        // y (n × stride, columns 2..2+rows written) = x (n × k) · wᵀ (w: rows × k).
        let (n, k, rows, stride) = (5, 9, 4, 7);
        let x: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 - 2.0).collect();
        let w: Vec<f32> = (0..rows * k).map(|i| (i % 3) as f32 * 0.25).collect();
        let mut y = vec![f32::NAN; n * stride];
        matmul_strided(&mut y[2..], stride, &x, &w, n, k, rows, Threads(0)).unwrap();
        for t in 0..n {
            for j in 0..rows {
                let expected: f32 = (0..k).map(|p| x[t * k + p] * w[j * k + p]).sum();
                assert!((y[t * stride + 2 + j] - expected).abs() < 1e-4, "{t},{j}");
            }
            assert!(
                y[t * stride].is_nan() && y[t * stride + 1].is_nan(),
                "untouched columns"
            );
        }
        // The same through a dense Matrix, on both the row-by-row and the gemm path.
        let m = Matrix::dense(rows, k, w.clone()).unwrap();
        for count in [1, n] {
            let mut out = vec![0f32; count * rows];
            m.matmul(&x[..count * k], &mut out, Threads(0)).unwrap();
            for t in 0..count {
                for j in 0..rows {
                    let expected: f32 = (0..k).map(|p| x[t * k + p] * w[j * k + p]).sum();
                    assert!((out[t * rows + j] - expected).abs() < 1e-4);
                }
            }
        }
        assert!(Matrix::dense(3, 3, vec![0.0; 8]).is_err());
    }
}
