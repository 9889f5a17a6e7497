//! The numeric engine. Today it holds the f32 matrix product every other kernel builds on;
//! the transformer issues add fused attention, norms, RoPE and quantized products here.
//!
//! Why our own engine rather than a tensor framework: see DESIGN.md. Matrix products go
//! through the `gemm` crate, which reaches 85–120 GFLOP/s on the 2-core development machine.

mod matrix;
mod ops;
mod q8;
mod quant;
mod simd;

pub use matrix::{Matrix, MatrixData};
pub use ops::*;
pub use q8::{
    dot_quantized, dot_quantized_portable, quantize_activations, quantize_activations_for,
    ActivationFormat, DotOrder, QuantizedRow,
};
pub use quant::{dequantize_block, dequantize_row, dot_row, f16_to_f32, f32_to_f16, QuantType};

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
