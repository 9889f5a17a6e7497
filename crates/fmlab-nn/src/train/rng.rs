//! Standard normal draws for weight initialisation, seeded and the same on every machine.

/// Standard normal draws (Box–Muller over the sampler's seeded generator): the same
/// weights for a seed on every machine.
pub(super) struct Normal {
    rng: fmlab_sample::Rng,
    spare: Option<f64>,
}

impl Normal {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            rng: fmlab_sample::Rng::new(seed),
            spare: None,
        }
    }

    pub(super) fn next(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        // u in (0, 1], so that ln u is finite.
        let (u, v) = (1.0 - self.rng.next_f64(), self.rng.next_f64());
        let r = (-2.0 * u.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * v).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}
