//! Philox-4x32-10 exactly as Triton's `tl.randint4x` (triton/language/random.py), and the
//! float32 uniform/normal conversions of `tl.rand4x` / `tl.randn4x`.
//!
//! `randint4x(seed, offset)`: key (k0, k1) = (low, high 32 bits of the seed), counter
//! (c0, c1, c2, c3) = (low, high 32 bits of the offset, 0, 0), ten rounds of
//! `c0' = hi(B·c2) ^ c1 ^ k0, c2' = hi(A·c0) ^ c3 ^ k1, c1' = lo(B·c2), c3' = lo(A·c0)`, with the
//! key raised by (KEY_A, KEY_B) after every round.

/// Philox round multiplier A (multiplies c0).
pub const ROUND_A: u32 = 0xD251_1F53;
/// Philox round multiplier B (multiplies c2).
pub const ROUND_B: u32 = 0xCD9E_8D57;
/// Key increment of k0 per round (golden ratio).
pub const KEY_A: u32 = 0x9E37_79B9;
/// Key increment of k1 per round (√3 − 1).
pub const KEY_B: u32 = 0xBB67_AE85;
/// Rounds of Triton's default (`N_ROUNDS_DEFAULT`).
pub const ROUNDS: usize = 10;

/// Four random 32-bit words for (`seed`, `offset`): Triton's `tl.randint4x(seed, offset)` with an
/// int64 offset.
#[inline(always)]
pub fn randint4x(seed: u64, offset: u64) -> [u32; 4] {
    let (mut k0, mut k1) = (seed as u32, (seed >> 32) as u32);
    let (mut c0, mut c1, mut c2, mut c3) = (offset as u32, (offset >> 32) as u32, 0u32, 0u32);
    for _ in 0..ROUNDS {
        let (p0, p2) = (c0, c2);
        let prod_b = u64::from(ROUND_B) * u64::from(p2);
        let prod_a = u64::from(ROUND_A) * u64::from(p0);
        c0 = ((prod_b >> 32) as u32) ^ c1 ^ k0;
        c2 = ((prod_a >> 32) as u32) ^ c3 ^ k1;
        c1 = prod_b as u32;
        c3 = prod_a as u32;
        k0 = k0.wrapping_add(KEY_A);
        k1 = k1.wrapping_add(KEY_B);
    }
    [c0, c1, c2, c3]
}

/// Triton's `uint_to_uniform_float` for a 32-bit word: the word as int32, negatives mapped to
/// `!x`, times 4.6566127342e-10 in float32; a value in [0, 1).
#[inline(always)]
pub fn uint_to_uniform_float(x: u32) -> f32 {
    let i = x as i32;
    let i = if i < 0 { !i } else { i };
    (i as f32) * 4.656_612_7e-10_f32
}

/// Triton's `pair_uniform_to_normal` (Box–Muller in float32): u1 clamped to ≥ 1e-7,
/// θ = 2π·u2, r = √(−2 ln u1), returns (r cos θ, r sin θ).
#[inline(always)]
pub fn pair_uniform_to_normal(u1: f32, u2: f32) -> (f32, f32) {
    let u1 = u1.max(1.0e-7_f32);
    let th = std::f32::consts::TAU * u2;
    let r = (-2.0_f32 * u1.ln()).sqrt();
    (r * th.cos(), r * th.sin())
}

/// Four standard normals for (`seed`, `offset`): Triton's `tl.randn4x(seed, offset)`.
#[inline(always)]
pub fn randn4x(seed: u64, offset: u64) -> [f32; 4] {
    let [a, b, c, d] = randint4x(seed, offset).map(uint_to_uniform_float);
    let (n0, n1) = pair_uniform_to_normal(a, b);
    let (n2, n3) = pair_uniform_to_normal(c, d);
    [n0, n1, n2, n3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (seed, offset, tl.randint4x words, tl.randn4x values) obtained from Triton 3.9's own
    /// `tl.randint4x` / `tl.randn4x` run under `TRITON_INTERPRET=1` in a one-program kernel with
    /// an int64 offset tensor (tests/test_rust_kernels.py regenerates them).
    #[allow(clippy::type_complexity)]
    #[rustfmt::skip]
    const KAT: &[(u64, u64, [u32; 4], [f64; 4])] = &[
        (0x0, 0x0, [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8], [0.046551529318094254, 0.6699951887130737, 0.2741977274417877, -1.0954265594482422]),
        (0x0, 0x1, [0xf8e4cca4, 0x5cb200db, 0xb1a574eb, 0x97eff67], [-0.3883614242076874, -2.373033285140991, 0.8850517272949219, 0.445284366607666]),
        (0x0, 0xffffffff, [0xc5b20a9d, 0x4434ec4e, 0x11bbe4fb, 0x2a1ef7a5], [-1.2274311780929565, -0.2571263313293457, -0.9476451277732849, 1.7478747367858887]),
        (0x0, 0x100000000, [0x6ad0c5ec, 0xea236249, 0x73a459f5, 0x74944b3], [0.28715839982032776, 0.5285775661468506, 0.4221080541610718, 0.15775634348392487]),
        (0x0, 0x10000000005, [0x9ec02c5c, 0x3e3005ff, 0x99a709ab, 0xfc7ed9d4], [-0.7383540868759155, 0.06586264818906784, 0.6589425802230835, 0.11448696255683899]),
        (0x0, 0x75bcd15, [0xc56c4902, 0xb6a5ef17, 0x6712cb73, 0xef390b7e], [-1.1209028959274292, -0.5540330410003662, 0.4473024606704712, 0.4828023612499237]),
        (0x1, 0x0, [0xe3e80670, 0xe50a0ebc, 0x95f222c0, 0xb615aa27], [0.42641785740852356, 1.6885323524475098, -0.5420960783958435, -0.28686726093292236]),
        (0x1, 0x1, [0xac08141b, 0xdfc5ccbe, 0x79c07a47, 0xa7f66093], [-0.010247047059237957, 0.9181903600692749, -0.12053044140338898, -0.2925112843513489]),
        (0x1, 0xffffffff, [0x790b3f, 0xbbcdb053, 0xf78808c7, 0x69fffa4d], [-3.2761926651000977, -0.6845939755439758, 1.0985909700393677, -2.055340528488159]),
        (0x1, 0x100000000, [0x833ff8dc, 0x225c963c, 0x232b88b3, 0xb334b07], [-0.02623290754854679, 0.22527162730693817, 1.3705017566680908, 0.8398781418800354]),
        (0x1, 0x10000000005, [0x8af171a8, 0x81196391, 0x1bc293d2, 0xc9c45551], [0.4221625328063965, -0.022800270467996597, -1.55126953125, 0.8064900040626526]),
        (0x1, 0x75bcd15, [0xd0990c6e, 0x1752c5f5, 0xbc07e2f4, 0x33b18a37], [0.5823459625244141, 1.283588171005249, -0.9260141849517822, 0.6391005516052246]),
        (0x3039, 0x0, [0xd1fa3e81, 0x2f7fea51, 0xd2ca9611, 0xe328bbe0], [-0.9862430095672607, 1.0359176397323608, 0.22283345460891724, 1.4254224300384521]),
        (0x3039, 0x1, [0xb66929, 0x24f09764, 0xe49ad815, 0xa55f2a37], [-0.7736670970916748, 3.1278319358825684, -0.4576679766178131, -1.695249080657959]),
        (0x3039, 0xffffffff, [0xca8b632d, 0x6463624c, 0x7bd4b9d2, 0xaf1f3637], [0.28246262669563293, -1.290959358215332, -0.17395958304405212, -0.18964137136936188]),
        (0x3039, 0x100000000, [0x43fdcd10, 0xfc637d81, 0x510da81f, 0xdbac0d1c], [1.1072263717651367, 0.1983630657196045, -0.20156458020210266, 0.9344609975814819]),
        (0x3039, 0x10000000005, [0x3566e929, 0x2b924dfa, 0x5b36869c, 0x22ec171c], [-0.7113210558891296, 1.1146240234375, -0.11767951399087906, 0.8147499561309814]),
        (0x3039, 0x75bcd15, [0xf63eabf9, 0x73d37710, 0xdc987e00, 0x6b237bc0], [1.8757891654968262, -1.2766664028167725, 0.8335691690444946, -1.3695091009140015]),
        (0x100000007, 0x0, [0x59c2c148, 0xf7fde228, 0x767f1b95, 0xc883a31c], [0.7782148718833923, 0.32271718978881836, -0.3589925169944763, 0.159430131316185]),
        (0x100000007, 0x1, [0xde2d9b0, 0xd79a2a5f, 0x948527d7, 0x32001a11], [-0.8444371223449707, 1.9311150312423706, -0.45696938037872314, 0.37501028180122375]),
        (0x100000007, 0xffffffff, [0xc3cf1965, 0x78b1a686, 0x3f8afee8, 0x269aab9b], [1.1502633094787598, -0.43117108941078186, -0.37697815895080566, 1.1218359470367432]),
        (0x100000007, 0x100000000, [0xda557cec, 0xcd22e7cb, 0x7100ed8c, 0xefff06f3], [-1.2500665187835693, 0.9401465058326721, 0.3529362082481384, 0.35306787490844727]),
        (0x100000007, 0x10000000005, [0x39da271, 0x6daaf033, 0x2386e8a8, 0x5a8b2dd1], [1.6604725122451782, -2.0919578075408936, -0.4237212836742401, -1.5439999103546143]),
        (0x100000007, 0x75bcd15, [0x15b350fd, 0xc126a8b2, 0xd02d767b, 0x468540f5], [-1.8809772729873657, 0.1063891053199768, -1.3319684267044067, -0.44151127338409424]),
        (0x7fffffffffffffff, 0x0, [0x32e74fa9, 0x93ebecf5, 0xf8ec7334, 0xd8e8ffd], [0.7588109374046326, -1.1262331008911133, 1.8928992748260498, 1.4857561588287354]),
        (0x7fffffffffffffff, 0x1, [0x831d704, 0xc53c3983, 0xc909c241, 0x8cb94662], [-2.267592430114746, 0.5959133505821228, 1.054818868637085, -0.7603538632392883]),
        (0x7fffffffffffffff, 0xffffffff, [0xb1693dc0, 0x841ec283, 0xff04df7d, 0xc8a72ef0], [0.9675923585891724, -0.1984061449766159, -2.8439366817474365, 1.2862825393676758]),
        (0x7fffffffffffffff, 0x100000000, [0xdb8b77d5, 0x43b8e92e, 0xd805adbd, 0x6510d8d5], [-1.5585120916366577, -0.28797999024391174, 0.3754655420780182, -1.4786604642868042]),
        (0x7fffffffffffffff, 0x10000000005, [0x6021829c, 0x75a78b5a, 0x7d7966a8, 0xe023731e], [0.6612294316291809, -0.36798742413520813, 0.0013570863520726562, 0.19964508712291718]),
        (0x7fffffffffffffff, 0x75bcd15, [0xbf147a53, 0x55c64e6f, 0x4f0d5bf8, 0x8dd405c9], [-0.5606181621551514, -1.021497130393982, 0.764132022857666, -0.61639803647995]),
    ];

    #[test]
    fn randint4x_matches_triton_known_answers() {
        for &(seed, offset, words, _) in KAT {
            assert_eq!(
                randint4x(seed, offset),
                words,
                "seed {seed:#x} offset {offset:#x}"
            );
        }
    }

    #[test]
    fn randn4x_matches_triton_up_to_libm_rounding() {
        for &(seed, offset, _, normals) in KAT {
            let got = randn4x(seed, offset);
            for (&g, w) in got.iter().zip(normals) {
                // log/cos/sin of different libms may differ in the last bits
                let tol = 4.0 * f64::from(f32::EPSILON) * w.abs().max(1.0);
                assert!((f64::from(g) - w).abs() <= tol, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn uniform_conversion_edges() {
        assert_eq!(uint_to_uniform_float(0), 0.0);
        assert_eq!(uint_to_uniform_float(u32::MAX), 0.0); // int32 −1 → !(−1) = 0
        let top = uint_to_uniform_float(0x7fff_ffff);
        assert!(top < 1.0 && top > 0.999_999);
        assert_eq!(uint_to_uniform_float(0x8000_0000), top); // int32::MIN → int32::MAX
                                                             // the scale is Triton's literal rounded to float32
        assert_eq!(
            uint_to_uniform_float(1),
            "4.6566127342e-10".parse::<f32>().unwrap()
        );
    }

    #[test]
    fn normal_clamps_tiny_uniforms() {
        let (a, b) = pair_uniform_to_normal(0.0, 0.0);
        let r = (-2.0_f32 * 1.0e-7_f32.ln()).sqrt();
        assert_eq!((a, b), (r, 0.0));
    }
}
