//! svrctl: query and command a running svrd over its management socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use svr_control::mgmt::{COMMANDS, Command, request};
use svr_control::printable::escape_control_keep_lines;

/// Default management socket of svrd.
const DEFAULT_SOCKET: &str = "/run/svrd/svrd.sock";

#[derive(Parser)]
#[command(
    name = "svrctl",
    version,
    about = "Query and command a running svrd",
    after_help = format!("Commands:\n  {}", COMMANDS.join("\n  "))
)]
struct Cli {
    /// svrd's management socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the reply as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The command, e.g. `show peers security`.
    #[arg(required = true, num_args = 1..)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let words: Vec<&str> = cli.command.iter().map(String::as_str).collect();
    let command = match Command::from_words(&words) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("svrctl: {message}");
            return ExitCode::from(2);
        }
    };
    let reply = match request(&cli.socket, &command) {
        Ok(reply) => reply,
        Err(error) => {
            eprintln!("svrctl: {error}");
            return ExitCode::FAILURE;
        }
    };
    if cli.json {
        match serde_json::to_string_pretty(&reply.data) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("svrctl: cannot print reply: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else if reply.ok {
        // The text can quote peer certificates, so control sequences are shown, not run.
        print!("{}", escape_control_keep_lines(&reply.text));
    } else {
        eprintln!("svrctl: {}", escape_control_keep_lines(&reply.text));
    }
    if reply.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
