use rand::{Rng, SeedableRng};
use seqcalc::model::*;
fn main() {
    let m = Seq2Seq::new(&ModelConfig::default(), 12, 7, 4).unwrap();
    let p: Vec<f32> = m.init_params(1);
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2);
    let mut e = Engine::<f32>::new(m, threads);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let x: Vec<u8> = (0..128 * 7).map(|_| rng.random_range(0..12)).collect();
    let y: Vec<u8> = (0..128 * 4).map(|_| rng.random_range(0..12)).collect();
    for _ in 0..20 {
        e.train_step(&p, &x, &y, 128);
    }
    let mut times = vec![];
    for _ in 0..100 {
        let t = std::time::Instant::now();
        e.train_step(&p, &x, &y, 128);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "threads {threads}: median {:.2} ms/step, min {:.2}, s/epoch {:.2}",
        times[50],
        times[0],
        times[50] * 352.0 / 1e3
    );
}
