//! The `rapport-profile` binary.

fn main() -> std::process::ExitCode {
    rapport_kit::main::<rapport_profile::App>()
}
