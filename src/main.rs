//! `csfuse` command-line program. Each subcommand lives in `cmd/`.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "csfuse",
    version,
    about = "Fuse co-registered multimodal medical images (CT + MR, MR-T1 + MR-T2, PET/SPECT + MR) by CS-MCA",
    long_about = "Fuse co-registered multimodal medical images by CS-MCA (convolutional sparsity based \
morphological component analysis, Liu et al., IEEE SPL 2019).\n\n\
Each source is split into a smooth base and a detail layer; the detail is decomposed into cartoon and \
texture parts by convolutional sparse coding against two dictionaries; the coefficient maps are fused \
by an l1-activity choose-max rule and the fused image is synthesised again.\n\n\
Start with `csfuse fuse --help`.",
    after_help = "Examples:\n  csfuse phantom --out-dir example\n  csfuse fuse example/ct_like.png example/mr_like.png -o fused.png --report fused.json\n  csfuse sparse-code img.png --dict D.npy --lambda 0.1 --highpass 60 --out-coef X.npy\n  csfuse fuse a.png b.png -o f.png --backend gpu --validate\n  csfuse fuse ct.nii.gz mr.nii.gz -o fused.nii.gz\n  csfuse batch pairs.csv --out-dir fused --shard 0/4\n  csfuse devices\n  csfuse bench"
)]
struct Cli {
    /// Worker threads for the CPU engine (default: all cores, or SLURM_CPUS_PER_TASK in a Slurm job).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// Only print errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Fuse(cmd::fuse::Args),
    Batch(cmd::batch::Args),
    SparseCode(cmd::sparse_code::Args),
    Learn(cmd::learn::Args),
    Bench(cmd::bench::Args),
    Phantom(cmd::phantom::Args),
    Devices(cmd::devices::Args),
    Metrics(cmd::metrics::Args),
    Evaluate(cmd::evaluate::Args),
    /// Print a shell completion script (e.g. `csfuse completions bash > ~/.local/share/bash-completion/completions/csfuse`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff (e.g. `csfuse man > csfuse.1 && man ./csfuse.1`).
    Man,
}

fn main() {
    let cli = Cli::parse();
    // wgpu's own info lines are noise to a user; its warnings and errors are kept. OpenJPEG's
    // messages (through jpeg2k) are not: a stream it cannot decode is an error naming the file.
    let level = if cli.quiet {
        "error"
    } else {
        "info,wgpu_core=warn,wgpu_hal=warn,naga=warn,jpeg2k=off"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .format_target(false)
        .init();
    csfuse::formats::output::handle_signals();
    // A Slurm task without CPU binding sees the whole node: use the cores it was given.
    let threads = cli.threads.or_else(|| {
        let (n, var) = csfuse::jobs::allocation::scheduler_cpus()?;
        log::debug!("{n} worker threads from {var}");
        Some(n)
    });
    if let Some(n) = threads {
        if n == 0 {
            eprintln!("csfuse: error: --threads must be at least 1");
            std::process::exit(2);
        }
        // More workers than cores only adds contention (512 on 2 cores ran 40x slower).
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let n = if n > cores {
            log::warn!("--threads {n} is more than the {cores} cores here; using {cores}");
            cores
        } else {
            n
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .expect("the global thread pool is set once");
    }
    let result = match cli.command {
        Command::Fuse(a) => cmd::fuse::run(a),
        // batch has its own exit statuses: 0 all done, 1 some items failed, 2 usage error.
        Command::Batch(a) => std::process::exit(cmd::batch::run(a, cli.threads)),
        Command::SparseCode(a) => cmd::sparse_code::run(a),
        Command::Learn(a) => cmd::learn::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Phantom(a) => cmd::phantom::run(a),
        Command::Devices(a) => cmd::devices::run(a),
        Command::Metrics(a) => cmd::metrics::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "csfuse", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                // `csfuse man | head` closes the pipe early; that is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(csfuse::Error::io("standard output", e))
                }
                _ => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        eprintln!("csfuse: error: {e}");
        std::process::exit(match e {
            csfuse::Error::Interrupted(_) => 130,
            _ => 1,
        });
    }
}
