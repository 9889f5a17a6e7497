//! The float types training runs in: f32 for training (exp and sigmoid through the kernels'
//! vectorised `exp_in_place`/`sigmoid_into`), f64 for gradient checks against finite
//! differences (libm). Each type also names its thread's buffer pool (`pool.rs`).

/// The float types training runs in.
pub trait Float:
    Copy
    + Default
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + Send
    + Sync
    + 'static
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn zero() -> Self {
        Self::default()
    }
    /// The calling thread's pool of large buffers of this type (see `pool::Buf`).
    fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<Self>>>>;
    /// eˣ of every element in place.
    fn exp_slice(xs: &mut [Self]) {
        xs.iter_mut().for_each(|x| *x = x.exp());
    }
    /// σ(x) of every element of `x` into `out`.
    fn sigmoid_slice(x: &[Self], out: &mut [Self]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = Self::one() / (Self::one() + (-v).exp());
        }
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

macro_rules! float_impl {
    ($t:ty $(, $extra:item)*) => {
        impl Float for $t {
            $($extra)*
            fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<$t>>>> {
                thread_local! {
                    static POOL: std::cell::RefCell<Vec<Vec<$t>>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                &POOL
            }
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
        }
    };
}
// f32 (training) takes the vectorised kernels; f64 (gradient checks) stays with libm.
float_impl!(
    f32,
    fn exp_slice(xs: &mut [f32]) {
        fmlab_kernels::exp_in_place(xs)
    },
    fn sigmoid_slice(x: &[f32], out: &mut [f32]) {
        fmlab_kernels::sigmoid_into(x, out)
    }
);
float_impl!(f64);
