//! The `rapport-outreach` binary.

fn main() -> std::process::ExitCode {
    rapport_kit::main::<rapport_outreach::App>()
}
