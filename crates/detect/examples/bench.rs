//! Runs the detection benchmark:
//! `cargo run --release -p phalanx-detect --example bench -- --indicators 1000000 --lines 2000000 [--export DIR]`

use phalanx_detect::bench::{BenchConfig, CountingAlloc, run};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    let mut cfg = BenchConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            match args.next().map(|v| v.replace('_', "").parse()) {
                Some(Ok(n)) => n,
                _ => {
                    eprintln!("{name} needs a number");
                    std::process::exit(2);
                }
            }
        };
        match a.as_str() {
            "--indicators" => cfg.indicators = num("--indicators"),
            "--lines" => cfg.lines = num("--lines"),
            "--chunk" => cfg.chunk_lines = num("--chunk"),
            "--seed" => cfg.seed = num("--seed") as u64,
            "--export" => cfg.export_dir = args.next().map(Into::into),
            "--export-patterns" => cfg.export_patterns = num("--export-patterns"),
            "--export-observations" => cfg.export_observations = num("--export-observations"),
            other => {
                eprintln!("unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    print!("{}", run(&cfg));
}
