//! `classification-train`: trains the text model from the labelled corpus
//! (`train`, run by `make train`) and measures the service's needs and
//! emotion on the held-out split (`eval`, run by `make eval`).
//!
//! Both refuse a corpus with near-duplicates across the split, since such
//! a split would report memorization as accuracy.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use rapport_classification::corpus::{self, NEAR_DUPLICATE};
use rapport_classification::model::TextModel;
use rapport_classification::policy::PolicySource;
use rapport_classification::reload::Reloader;

#[derive(Parser)]
#[command(
    name = "classification-train",
    about = "Train and evaluate the classification text model"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// The labelled corpus (TSV).
    #[arg(long, global = true, default_value_os_t = corpus::default_path())]
    corpus: PathBuf,
    /// The model file written by `train` and read by `eval`.
    #[arg(long, global = true, default_value_os_t = corpus::default_model_path())]
    model: PathBuf,
    /// Policy file used by `eval` (default: the built-in policy).
    #[arg(long, global = true)]
    policy: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Train on the training split and write the model.
    Train,
    /// Print per-class precision/recall and macro-F1 on the held-out split.
    Eval {
        /// Also list every misclassified held-out message.
        #[arg(long)]
        errors: bool,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("classification-train: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(&args.corpus)
        .with_context(|| format!("cannot read {}", args.corpus.display()))?;
    let examples = corpus::parse(&source)?;
    let duplicates = corpus::near_duplicates(&examples, NEAR_DUPLICATE);
    if !duplicates.is_empty() {
        let list: Vec<String> = duplicates
            .iter()
            .map(|(h, t, s)| format!("{h} ~ {t} ({s:.2})"))
            .collect();
        bail!(
            "near-duplicates across the split (similarity ≥ {NEAR_DUPLICATE}): {}",
            list.join(", ")
        );
    }
    let mut out = std::io::stdout().lock();
    match args.command {
        Command::Train => {
            let digest = corpus::digest(&source);
            let json = corpus::train(&examples, &digest)?;
            std::fs::write(&args.model, json + "\n")
                .with_context(|| format!("cannot write {}", args.model.display()))?;
            let held = examples.iter().filter(|e| e.held_out).count();
            writeln!(
                out,
                "trained on {} examples ({} held out), corpus {digest}; wrote {}",
                examples.len() - held,
                held,
                args.model.display()
            )?;
        }
        Command::Eval { errors } => {
            let model = TextModel::load(&args.model)?;
            let digest = corpus::digest(&source);
            if model.corpus_digest() != digest {
                bail!(
                    "the model was trained on corpus {}, the corpus is now {digest}: run `make train`",
                    model.corpus_digest()
                );
            }
            let source = args
                .policy
                .map_or(PolicySource::BuiltIn, PolicySource::File);
            let policy = Reloader::load(&source, None)?.with_model(Arc::new(model));
            let eval = corpus::evaluate(&policy, &examples, chrono::Utc::now());
            writeln!(
                out,
                "corpus {}: {} examples, {} train / {} held out (stratified by need, no near-duplicates ≥ {NEAR_DUPLICATE})\n",
                args.corpus.display(),
                examples.len(),
                eval.train,
                eval.held_out
            )?;
            write!(
                out,
                "{}",
                eval.needs.table("needs (service: rules + model)")
            )?;
            write!(
                out,
                "{}",
                eval.emotion.table("emotion (service: rules + model)")
            )?;
            write!(out, "{}", eval.model_needs.table("needs (model alone)"))?;
            write!(out, "{}", eval.model_emotion.table("emotion (model alone)"))?;
            if errors {
                writeln!(out, "misclassified (expected → got):")?;
                for (id, expected, got) in &eval.errors {
                    let text = examples
                        .iter()
                        .find(|e| &e.id == id)
                        .map_or("", |e| e.text.as_str());
                    writeln!(out, "  {id}: {expected} → {got}  {text}")?;
                }
            }
        }
    }
    Ok(())
}
