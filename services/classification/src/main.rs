//! The `rapport-classification` binary.

fn main() -> std::process::ExitCode {
    rapport_kit::main::<rapport_classification::App>()
}
