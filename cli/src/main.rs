//! `cupid-sync`: the operator CLI. Today: bulk tracking from a file (`track --file ids.txt`);
//! the other admin routes are reached with the make targets until their commands land.

mod ids;

use backon::{ExponentialBuilder, Retryable};
use clap::{Parser, Subcommand};
use cupid_sync::api::wire::{Envelope, TrackRequest, TrackResponse};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Most ids per PUT /admin/properties (the API's limit).
const BATCH: usize = cupid_sync::api::app::MAX_TRACK_IDS;

#[derive(Parser)]
#[command(
    name = "cupid-sync",
    version,
    about = "Operate a cupid-sync deployment"
)]
struct Cli {
    /// The API's base URL.
    #[arg(
        long,
        env = "CUPID_SYNC_API",
        default_value = "http://localhost:8080",
        global = true
    )]
    api: String,
    /// The admin bearer token (never printed).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the result as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start tracking the ids of a file (one per line; blank lines and `#` comments skipped),
    /// 10,000 per call, with progress; reports new / already tracked / invalid lines.
    Track {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug)]
enum CliError {
    Usage(String),
    Api { code: String, message: String },
    Network { url: String, message: String },
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m}"),
            CliError::Api { code, message } => write!(f, "API error {code}: {message}"),
            CliError::Network { url, message } => write!(f, "could not reach {url}: {message}"),
        }
    }
}

struct Client {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Client {
    /// One PUT of ids; retried (with backoff) on network errors and 5xx, not on 4xx.
    async fn track(&self, ids: &[i64]) -> Result<TrackResponse, CliError> {
        let url = format!("{}/api/v1/admin/properties", self.api.trim_end_matches('/'));
        let body = TrackRequest {
            hotel_ids: ids.to_vec(),
        };
        let send = || async {
            let resp = self
                .http
                .put(&url)
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await
                .map_err(|e| {
                    (
                        true,
                        CliError::Network {
                            url: url.clone(),
                            message: e.to_string(),
                        },
                    )
                })?;
            let status = resp.status();
            let env: Envelope<TrackResponse> = resp.json().await.map_err(|e| {
                (
                    status.is_server_error(),
                    CliError::Network {
                        url: url.clone(),
                        message: format!("HTTP {status}, unreadable answer: {e}"),
                    },
                )
            })?;
            match (env.data, env.error) {
                (Some(d), _) if env.success => Ok(d),
                (_, Some(e)) => Err((
                    status.is_server_error(),
                    CliError::Api {
                        code: e.code,
                        message: e.message,
                    },
                )),
                _ => Err((
                    false,
                    CliError::Network {
                        url: url.clone(),
                        message: format!("HTTP {status} without data or error"),
                    },
                )),
            }
        };
        send.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_times(4),
        )
        .when(|(retry, _)| *retry)
        .await
        .map_err(|(_, e)| e)
    }
}

async fn track(client: &Client, file: &PathBuf, json: bool) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let parsed = ids::parse(&text);
    let started = Instant::now();
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(parsed.ids.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} ids  {per_sec}  eta {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut total = TrackResponse::default();
    for chunk in parsed.ids.chunks(BATCH) {
        let r = client.track(chunk).await?;
        total.requested += r.requested;
        total.newly_tracked += r.newly_tracked;
        total.new += r.new;
        total.retracked += r.retracked;
        total.already_tracked += r.already_tracked;
        bar.inc(chunk.len() as u64);
        bar.set_message(format!("{} new", total.new));
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if json {
        let out = serde_json::json!({
            "file": file.display().to_string(),
            "lines": parsed.lines,
            "ids": parsed.ids.len(),
            "duplicates_in_file": parsed.duplicates,
            "new": total.new,
            "retracked": total.retracked,
            "already_tracked": total.already_tracked,
            "invalid": parsed.invalid.iter().map(|(line, text, why)| serde_json::json!({"line": line, "text": text, "reason": why})).collect::<Vec<_>>(),
            "seconds": secs,
        });
        println!("{out}");
    } else {
        println!(
            "{}: {} lines, {} distinct ids in {:.1} s ({:.0} ids/s)",
            file.display(),
            parsed.lines,
            parsed.ids.len(),
            secs,
            parsed.ids.len() as f64 / secs.max(1e-9)
        );
        println!(
            "  new: {}   tracked again: {}   already tracked: {}   duplicate lines: {}   invalid lines: {}",
            total.new,
            total.retracked,
            total.already_tracked,
            parsed.duplicates,
            parsed.invalid.len()
        );
        for (line, text, why) in parsed.invalid.iter().take(20) {
            println!("  line {line}: `{text}` {why}");
        }
        if parsed.invalid.len() > 20 {
            println!("  … and {} more invalid lines", parsed.invalid.len() - 20);
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(token) = cli.token.clone().filter(|t| !t.is_empty()) else {
        eprintln!("error: no admin token: pass --token or set ADMIN_TOKEN");
        return ExitCode::from(2);
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client {
        http,
        api: cli.api.clone(),
        token,
    };
    let r = match &cli.command {
        Command::Track { file } => track(&client, file, cli.json).await,
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
