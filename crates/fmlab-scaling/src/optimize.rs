//! Two small optimisers, written here because they are a few dozen lines each and the
//! planner needs nothing more: a bracketed scalar minimiser and L-BFGS.

/// Minimises `f` on `[lo, hi]`: a grid of `grid` points finds the basin, golden-section
/// search refines it. Returns the argmin.
pub(crate) fn minimize_scalar(f: impl Fn(f64) -> f64, lo: f64, hi: f64, grid: usize) -> f64 {
    let grid = grid.max(3);
    let step = (hi - lo) / (grid - 1) as f64;
    let mut best = (0, f64::INFINITY);
    for i in 0..grid {
        let v = f(lo + step * i as f64);
        if v < best.1 {
            best = (i, v);
        }
    }
    let mut a = lo + step * best.0.saturating_sub(1) as f64;
    let mut b = lo + step * (best.0 + 1).min(grid - 1) as f64;
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - inv_phi * (b - a);
    let mut d = a + inv_phi * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..200 {
        if (b - a).abs() <= 1e-12 * (1.0 + a.abs()) {
            break;
        }
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - inv_phi * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + inv_phi * (b - a);
            fd = f(d);
        }
    }
    0.5 * (a + b)
}

/// Result of [`lbfgs`].
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
}

/// Limited-memory BFGS (Nocedal & Wright, algorithm 7.4) with a backtracking Armijo line
/// search. `f` returns the value and writes the gradient into its second argument.
pub(crate) fn lbfgs(
    f: &mut impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: &[f64],
    max_iterations: usize,
) -> Minimum {
    const MEMORY: usize = 10;
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut value = f(&x, &mut g);
    let mut history: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::with_capacity(MEMORY);
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    for _ in 0..max_iterations {
        if !value.is_finite() || norm(&g) < 1e-12 {
            break;
        }
        // Two-loop recursion: d = −H·g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let alpha = rho * dot(s, &q);
            axpy(-alpha, y, &mut q);
            alphas.push(alpha);
        }
        if let Some((s, y, _)) = history.last() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), alpha) in history.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &q);
            axpy(alpha - beta, s, &mut q);
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&direction, &g);
        if slope >= 0.0 {
            // Not a descent direction (curvature information went stale): restart.
            history.clear();
            direction = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        let mut step = if history.is_empty() {
            1.0 / norm(&g).max(1.0)
        } else {
            1.0
        };
        let mut accepted = false;
        for _ in 0..60 {
            for i in 0..n {
                x_new[i] = x[i] + step * direction[i];
            }
            let v = f(&x_new, &mut g_new);
            if v.is_finite() && v <= value + 1e-4 * step * slope {
                let s: Vec<f64> = (0..n).map(|i| x_new[i] - x[i]).collect();
                let y: Vec<f64> = (0..n).map(|i| g_new[i] - g[i]).collect();
                let sy = dot(&s, &y);
                if sy > 1e-16 {
                    if history.len() == MEMORY {
                        history.remove(0);
                    }
                    history.push((s, y, 1.0 / sy));
                }
                let improvement = value - v;
                x.copy_from_slice(&x_new);
                g.copy_from_slice(&g_new);
                value = v;
                accepted = improvement > 1e-15 * (1.0 + value.abs());
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    Minimum { x, value }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}
