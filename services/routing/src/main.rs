//! The `rapport-routing` binary.

fn main() -> std::process::ExitCode {
    rapport_kit::main::<rapport_routing::App>()
}
