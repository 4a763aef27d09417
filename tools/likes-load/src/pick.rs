//! Deterministic random choices: a small seeded generator and the post popularity samplers.
//! Seeded so that a run can be repeated exactly; no dependency, since statistical quality
//! beyond SplitMix64 does not matter for picking posts.

use crate::config::Popularity;

/// SplitMix64: tiny, fast, good enough to spread load.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Picks a post index in `0..posts` following a popularity law.
#[derive(Debug, Clone)]
pub struct PostPicker {
    popularity: Popularity,
    posts: u32,
    viral_share: f64,
    /// Cumulative Zipf weights, normalised to end at 1.
    cdf: Vec<f64>,
}

impl PostPicker {
    pub fn new(popularity: Popularity, posts: u32, viral_share: f64) -> Self {
        let cdf = match popularity {
            Popularity::Uniform => Vec::new(),
            Popularity::Zipf | Popularity::Viral => {
                let mut acc = 0.0;
                let mut cdf: Vec<f64> = (1..=posts)
                    .map(|k| {
                        acc += 1.0 / f64::from(k);
                        acc
                    })
                    .collect();
                for w in &mut cdf {
                    *w /= acc;
                }
                cdf
            }
        };
        Self {
            popularity,
            posts,
            viral_share,
            cdf,
        }
    }

    /// The next post index.
    pub fn pick(&self, rng: &mut Rng) -> u32 {
        match self.popularity {
            Popularity::Uniform => rng.below(u64::from(self.posts)) as u32,
            Popularity::Zipf => self.zipf(rng),
            Popularity::Viral => {
                if rng.unit() < self.viral_share {
                    0
                } else {
                    self.zipf(rng)
                }
            }
        }
    }

    fn zipf(&self, rng: &mut Rng) -> u32 {
        let u = rng.unit();
        let i = self.cdf.partition_point(|&c| c < u);
        i.min(self.posts as usize - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(p: &PostPicker, n: usize) -> Vec<usize> {
        let mut rng = Rng::new(1);
        let mut hits = vec![0; p.posts as usize];
        for _ in 0..n {
            hits[p.pick(&mut rng) as usize] += 1;
        }
        hits
    }

    #[test]
    fn zipf_favours_low_ranks_and_viral_takes_its_share() {
        let z = shares(&PostPicker::new(Popularity::Zipf, 100, 0.0), 100_000);
        // 1/H(100) ≈ 19.3% for rank 1, half of that for rank 2.
        assert!((18_000..20_500).contains(&z[0]), "{}", z[0]);
        assert!((9_000..10_400).contains(&z[1]), "{}", z[1]);
        let v = shares(&PostPicker::new(Popularity::Viral, 100, 0.5), 100_000);
        assert!((58_000..61_500).contains(&v[0]), "{}", v[0]);
        let u = shares(&PostPicker::new(Popularity::Uniform, 10, 0.0), 100_000);
        assert!(u.iter().all(|&h| (9_300..10_700).contains(&h)), "{u:?}");
    }
}
