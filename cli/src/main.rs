//! `cupid-sync`: the operator CLI, against a local stack or a deployment. Every command is one
//! admin route (or a few), with the API's own request and response types.

mod client;
mod commands;
mod config;
mod ids;
mod sync;
mod track;

use clap::{CommandFactory, Parser, Subcommand};
use client::{CliError, Client};
use commands::{Quarantine, Webhooks};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cupid-sync",
    version,
    about = "Operate a cupid-sync deployment: status, syncs, settings, schedule, properties, quarantine, webhooks",
    after_help = "The API and token come from --api / --token, then CUPID_SYNC_API / ADMIN_TOKEN, then the config file \
                  (TOML: api = \"…\", token = \"…\"; --config, $CUPID_SYNC_CONFIG or ~/.config/cupid-sync/config.toml), \
                  then http://localhost:8080."
)]
struct Cli {
    /// The API's base URL.
    #[arg(long, env = "CUPID_SYNC_API", global = true)]
    api: Option<String>,
    /// The admin bearer token (never printed).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A config file (TOML: `api`, `token`).
    #[arg(long, env = "CUPID_SYNC_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the API's data as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The sync's status: schedule, last run, counts per status, the run in progress.
    Status,
    /// Healthy, degraded, unhealthy or stopped (exit status 1 when unhealthy).
    Health,
    /// Start a sync now (all tracked properties, or some); --follow shows its progress.
    Sync {
        /// Only these ids (comma separated).
        #[arg(long, value_delimiter = ',', conflicts_with = "ids_file")]
        ids: Vec<i64>,
        /// Only the ids of this file (one per line, `#` comments).
        #[arg(long, value_name = "FILE")]
        ids_file: Option<PathBuf>,
        /// Fetch and compare, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Accept a change the circuit breaker would halt.
        #[arg(long)]
        force: bool,
        /// Follow the run with a progress bar, then print what it did (exit 1 if it failed).
        #[arg(long)]
        follow: bool,
    },
    /// Runs, newest first; --run ID for one run with its changed paths and failures.
    Logs {
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        #[arg(long, value_name = "SYNC_ID")]
        run: Option<String>,
    },
    /// Show the settings, or change some: `settings set sync_batch_size=50 sync_interval=24h`.
    Settings {
        #[command(subcommand)]
        action: Option<SettingsAction>,
    },
    /// Enable the schedule (every 12h or 24h; the configured interval if omitted).
    Start {
        #[arg(long)]
        interval: Option<String>,
    },
    /// Disable the schedule.
    Stop,
    /// Track hotel ids: given here, or from a file (--file) 10,000 per call with progress.
    Track {
        #[arg(long, value_name = "FILE", conflicts_with = "ids")]
        file: Option<PathBuf>,
        ids: Vec<i64>,
    },
    /// Stop tracking hotel ids (their data is kept).
    Untrack {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// One property as stored: record and document (--lang fr for a translation; --reviews).
    Property {
        id: i64,
        #[arg(long)]
        lang: Option<String>,
        #[arg(long, conflicts_with = "lang")]
        reviews: bool,
    },
    /// Quarantined properties: list, show, accept, discard.
    Quarantine {
        #[command(subcommand)]
        action: Option<QuarantineAction>,
    },
    /// Webhooks: list, add, remove, deliveries.
    Webhooks {
        #[command(subcommand)]
        action: Option<WebhookAction>,
    },
    /// Print a shell completion script: `cupid-sync completions bash > /etc/bash_completion.d/cupid-sync`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum SettingsAction {
    /// KEY=VALUE pairs, all or nothing.
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    List {
        #[arg(long)]
        rule: Option<String>,
    },
    Show {
        id: i64,
    },
    /// Store the held payloads despite their contract (at the next sync).
    Accept {
        id: i64,
        /// Who accepts (kept in the run log).
        #[arg(long)]
        by: String,
        /// The run that held what you read (`quarantined_by_sync` in `quarantine show ID`):
        /// only that content is accepted, never what a later run held since.
        #[arg(long = "run", value_name = "SYNC_ID")]
        run: String,
    },
    /// Drop the held payloads; the next sync checks the property again.
    Discard {
        id: i64,
    },
}

#[derive(Subcommand)]
enum WebhookAction {
    List,
    /// Add one; prints its signing secret once.
    Add {
        url: String,
        /// Events (comma separated; default: all).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Remove {
        id: String,
    },
    /// The delivery attempts, newest first.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
    },
}

/// Prints a value as pretty JSON (what `--json` prints).
pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot print the answer: {e}"),
    }
}

async fn run(cli: Cli) -> Result<bool, CliError> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "cupid-sync",
            &mut std::io::stdout(),
        );
        return Ok(true);
    }
    let (file, _) = config::load(cli.config.as_ref())?;
    let (api, token) = config::resolve(cli.api, cli.token, &file);
    let token = token.ok_or_else(|| {
        CliError::Usage(
            "no admin token: pass --token, set ADMIN_TOKEN, or put `token = \"…\"` in the config file"
                .into(),
        )
    })?;
    let c = Client::new(&api, token)?;
    let json = cli.json;
    match cli.command {
        Command::Status => commands::status(&c, json).await.map(|_| true),
        Command::Health => commands::health(&c, json).await,
        Command::Sync {
            mut ids,
            ids_file,
            dry_run,
            force,
            follow,
        } => {
            if let Some(f) = ids_file {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", f.display())))?;
                let parsed = ids::parse(&text);
                if let Some((line, text, why)) = parsed.invalid.first() {
                    return Err(CliError::Usage(format!(
                        "{} line {line}: `{text}` {why}",
                        f.display()
                    )));
                }
                ids = parsed.ids;
            }
            let args = sync::SyncArgs {
                ids,
                dry_run,
                force,
                follow,
            };
            sync::sync(&c, args, json).await
        }
        Command::Logs { limit, run } => commands::logs(&c, limit, run.as_deref(), json)
            .await
            .map(|_| true),
        Command::Settings { action } => {
            let pairs = match action {
                Some(SettingsAction::Set { pairs }) => pairs,
                None => Vec::new(),
            };
            commands::settings(&c, &pairs, json).await.map(|_| true)
        }
        Command::Start { interval } => commands::schedule(&c, Some(interval.as_deref()), json)
            .await
            .map(|_| true),
        Command::Stop => commands::schedule(&c, None, json).await.map(|_| true),
        Command::Track { file, ids } => track::track(&c, file.as_ref(), &ids, json)
            .await
            .map(|_| true),
        Command::Untrack { ids } => commands::untrack(&c, &ids, json).await.map(|_| true),
        Command::Property { id, lang, reviews } => {
            commands::property(&c, id, lang.as_deref(), reviews)
                .await
                .map(|_| true)
        }
        Command::Quarantine { action } => {
            let q = match &action {
                None => Quarantine::List { rule: None },
                Some(QuarantineAction::List { rule }) => Quarantine::List {
                    rule: rule.as_deref(),
                },
                Some(QuarantineAction::Show { id }) => Quarantine::Show(*id),
                Some(QuarantineAction::Accept { id, by, run }) => {
                    Quarantine::Accept { id: *id, by, run }
                }
                Some(QuarantineAction::Discard { id }) => Quarantine::Discard(*id),
            };
            commands::quarantine(&c, q, json).await.map(|_| true)
        }
        Command::Webhooks { action } => {
            let w = match &action {
                None | Some(WebhookAction::List) => Webhooks::List,
                Some(WebhookAction::Add {
                    url,
                    events,
                    description,
                }) => Webhooks::Add {
                    url,
                    events,
                    description: description.as_deref(),
                },
                Some(WebhookAction::Remove { id }) => Webhooks::Remove(id),
                Some(WebhookAction::Deliveries { id, limit }) => {
                    Webhooks::Deliveries { id, limit: *limit }
                }
            };
            commands::webhooks(&c, w, json).await.map(|_| true)
        }
        Command::Completions { .. } => Ok(true),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                CliError::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sync_ids_split_on_commas_and_exclude_a_file() {
        let cli =
            Cli::try_parse_from(["cupid-sync", "sync", "--ids", "1,2,3", "--follow"]).unwrap();
        assert!(
            matches!(cli.command, Command::Sync { ref ids, follow: true, .. } if ids == &[1, 2, 3])
        );
        assert!(
            Cli::try_parse_from(["cupid-sync", "sync", "--ids", "1", "--ids-file", "f"]).is_err()
        );
        assert!(Cli::try_parse_from(["cupid-sync", "logs", "--limit", "0"]).is_err());
    }
}
