//! Importance sampling (MATH.md Part I, "Evaluation"): everything that turns importance weights
//! into estimates lives here, at two levels.
//!
//! - [`log_mean_exp_ess`] ([`log_weights`]): from log weights log w[b, k] already computed by the
//!   caller, `log p̂ = logsumexp_k log w − log K` in float64 and the effective sample size
//!   `ESS = (Σw)² / Σw²`.
//! - [`Accumulator`] ([`accumulator`]): the whole evaluation of a Gaussian VAE, streamed chunk by
//!   chunk in O(B·D) memory. For each datum x (D,) and samples z_k from a proposal r, with decoder
//!   means g_k = g(z_k):
//!   log w_k = log N(x; g_k, σ² I) + log p(z_k) − log r(z_k),
//!   log p̂(x) = logsumexp_k log w_k − log K,   ESS = (Σ w)² / Σ w²,
//!   ŝ(x) = Σ_k w̄_k f_k,   Ĵ(x) = Σ_k w̄_k (‖f_k‖² − D/σ²) − ½‖ŝ(x)‖²,
//!   with f_k = (g_k − x)/σ² and self-normalised weights w̄_k = w_k / Σ w.
//!
//! Both levels share one log-sum-exp state per datum ([`Row`]): a running maximum m of the log
//! weights and the rescaled sums Σ e^{log w − m}, Σ e^{2(log w − m)}, from which log p̂ and the
//! ESS are read; the accumulator adds Σ e^{log w − m}‖g − x‖² and Σ e^{log w − m}(g − x).

pub mod accumulator;
pub mod log_weights;

pub use accumulator::{Accumulator, IsResult};
pub use log_weights::log_mean_exp_ess;

/// Log-sum-exp state of one datum's importance weights, with e_k = exp(log w_k − m).
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// Running max of log w (−∞ while no sample has positive weight).
    pub(crate) m: f64,
    /// Σ e_k, Σ e_k².
    pub(crate) s1: f64,
    pub(crate) s2: f64,
    /// Σ e_k ‖g_k − x‖² (accumulator only).
    pub(crate) sq: f64,
    /// Σ e_k (g_k − x) (D,) (accumulator only; empty for bare log weights).
    pub(crate) sg: Vec<f64>,
}

impl Row {
    /// An empty state (no weight yet) carrying a D-vector of weighted differences.
    pub(crate) fn new(d: usize) -> Row {
        Row {
            m: f64::NEG_INFINITY,
            s1: 0.0,
            s2: 0.0,
            sq: 0.0,
            sg: vec![0.0; d],
        }
    }

    /// Fill a fresh state from one set of log weights: m = max log w, s1 = Σ e_k, s2 = Σ e_k².
    /// Returns the e_k (empty if every weight is zero, i.e. all log w = −∞).
    pub(crate) fn weigh(&mut self, log_w: &[f64]) -> Vec<f64> {
        let mut es = Vec::with_capacity(log_w.len());
        self.weigh_into(log_w, &mut es);
        es
    }

    /// [`Row::weigh`] writing the e_k into `es` (cleared first; reused across calls).
    #[inline(always)]
    pub(crate) fn weigh_into(&mut self, log_w: &[f64], es: &mut Vec<f64>) {
        es.clear();
        self.m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if self.m == f64::NEG_INFINITY {
            return;
        }
        let m = self.m;
        es.resize(log_w.len(), 0.0);
        for (e, &lw) in es.iter_mut().zip(log_w) {
            *e = exp_nonpos(lw - m);
        }
        for &e in es.iter() {
            self.s1 += e;
            self.s2 += e * e;
        }
    }

    /// Whether no sample has positive weight (no estimate exists).
    pub(crate) fn is_empty(&self) -> bool {
        self.m == f64::NEG_INFINITY
    }

    /// log Σ_k w_k (−∞ for an empty state).
    pub(crate) fn log_sum(&self) -> f64 {
        if self.is_empty() {
            f64::NEG_INFINITY
        } else {
            self.m + self.s1.ln()
        }
    }

    /// Effective sample size (Σw)²/Σw² (0 for an empty state).
    pub(crate) fn ess(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.s1 * self.s1 / self.s2
        }
    }

    /// Multiply all sums by `a` (rescaling to a new maximum).
    fn scale(&mut self, a: f64) {
        self.s1 *= a;
        self.s2 *= a * a;
        self.sq *= a;
        for v in &mut self.sg {
            *v *= a;
        }
    }

    /// Fold another state into this one.
    pub(crate) fn merge(&mut self, o: &Row) {
        if o.is_empty() {
            return;
        }
        if o.m > self.m {
            let a = if self.is_empty() {
                0.0
            } else {
                (self.m - o.m).exp()
            };
            self.scale(a);
            self.m = o.m;
        }
        let c = (o.m - self.m).exp();
        self.s1 += c * o.s1;
        self.s2 += c * c * o.s2;
        self.sq += c * o.sq;
        for (v, w) in self.sg.iter_mut().zip(&o.sg) {
            *v += c * w;
        }
    }
}

/// exp(x) for x ≤ 0 (−∞ allowed), branch-free so that loops over it vectorise: Cody–Waite range
/// reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-13 Taylor polynomial (truncation < 2e-16
/// relative) and 2ⁿ built from the exponent bits; x < −708 gives 0 (true value < 4e-308).
#[inline(always)]
pub fn exp_nonpos(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2⁵²: adding it rounds to an integer
    let keep = if x >= -708.0 { 1.0 } else { 0.0 };
    let xc = if x >= -708.0 { x } else { -708.0 };
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let two_n = f64::from_bits(((ni + 1023) as u64) << 52);
    p * two_n * keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0.0f64;
        for i in 0..200_000 {
            let x = -(i as f64) * 3.6e-3 - 1e-9 * (i % 7) as f64;
            let (a, b) = (exp_nonpos(x), x.exp());
            if b > 1e-300 {
                worst = worst.max(((a - b) / b).abs());
            }
        }
        assert!(worst < 5e-16, "{worst}");
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert_eq!(exp_nonpos(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpos(-800.0), 0.0);
    }

    #[test]
    fn merged_state_equals_one_pass() {
        let lw = [0.3, -2.0, 5.0, f64::NEG_INFINITY, 4.5, -700.0];
        let mut whole = Row::new(0);
        whole.weigh(&lw);
        let mut parts = Row::new(0);
        for piece in [&lw[..2], &lw[2..3], &lw[3..]] {
            let mut p = Row::new(0);
            p.weigh(piece);
            parts.merge(&p);
        }
        assert!((parts.log_sum() - whole.log_sum()).abs() < 1e-14);
        assert!((parts.ess() - whole.ess()).abs() < 1e-12);
        let mut dead = Row::new(0);
        assert!(dead.weigh(&[f64::NEG_INFINITY; 3]).is_empty());
        assert_eq!((dead.log_sum(), dead.ess()), (f64::NEG_INFINITY, 0.0));
    }
}
