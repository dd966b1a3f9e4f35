//! svrctl: query and command a running svrd over its management socket.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use svr_control::mgmt::{COMMANDS, Command, request};
use svr_control::printable::escape_control_keep_lines;

/// Default management socket of svrd.
const DEFAULT_SOCKET: &str = "/run/svrd/svrd.sock";

/// Exit status for a command line svrctl cannot parse.
const USAGE_ERROR: u8 = 2;

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
    /// Print the reply as JSON instead of text. Errors are then printed to standard output
    /// as {"error": "..."}, with a non-zero exit status.
    #[arg(long)]
    json: bool,
    /// The command, e.g. `show peers security`.
    #[arg(required = true, num_args = 1..)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    // Read before parsing, so that an invalid command line is reported as JSON too.
    let json = json_requested(std::env::args_os());
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return invalid_arguments(&error, json),
    };
    // A command given as one quoted argument ("show stats") reads as its words.
    let words: Vec<&str> = cli.command.iter().flat_map(|word| word.split_whitespace()).collect();
    let command = match Command::from_words(&words) {
        Ok(command) => command,
        Err(message) => return fail(&message, cli.json, ExitCode::from(USAGE_ERROR)),
    };
    let reply = match request(&cli.socket, &command) {
        Ok(reply) => reply,
        Err(error) => return fail(&error.to_string(), cli.json, ExitCode::FAILURE),
    };
    let status = if reply.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if cli.json {
        // svrd's error replies carry {"error": text} already, and this covers any that do not.
        let data = if reply.ok || reply.data.get("error").is_some() {
            reply.data
        } else {
            serde_json::json!({ "error": reply.text })
        };
        print_json(&data);
    } else if reply.ok {
        // The text can quote peer certificates, so control sequences are shown, not run.
        print!("{}", escape_control_keep_lines(&reply.text));
    } else {
        eprintln!("svrctl: {}", escape_control_keep_lines(&reply.text));
    }
    status
}

/// Returns whether `--json` is among the options of the command line `args` (before a `--`).
fn json_requested(args: impl Iterator<Item = OsString>) -> bool {
    args.skip(1).take_while(|arg| arg != "--").any(|arg| arg == "--json")
}

/// Reports a command line clap rejected as other errors are reported, with clap's usage
/// hint. Help and version requests print as usual.
fn invalid_arguments(error: &clap::Error, json: bool) -> ExitCode {
    let informational = matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if informational {
        error.exit();
    }
    let rendered = error.render().to_string();
    let message = rendered.trim();
    fail(message.strip_prefix("error: ").unwrap_or(message), json, ExitCode::from(USAGE_ERROR))
}

/// Reports `message` as the command's error and returns `status`: as {"error": message} on
/// standard output under `--json`, otherwise as a line on standard error.
fn fail(message: &str, json: bool, status: ExitCode) -> ExitCode {
    if json {
        print_json(&serde_json::json!({ "error": message }));
    } else {
        eprintln!("svrctl: {}", escape_control_keep_lines(message));
    }
    status
}

/// Prints `value` as indented JSON.
fn print_json(value: &serde_json::Value) {
    println!("{value:#}");
}
