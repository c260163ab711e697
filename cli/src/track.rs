//! `track`: bulk tracking from a file of ids (one per line, `#` comments) or the command line.

use crate::client::{CliError, Client};
use crate::ids;
use cupid_sync::api::wire::{TrackRequest, TrackResponse};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

/// Most ids per PUT /admin/properties (the API's limit).
const BATCH: usize = cupid_sync::api::app::MAX_TRACK_IDS;

/// Tracks the ids of a file (or given on the command line), 10,000 per call, with progress.
pub async fn track(
    client: &Client,
    file: Option<&PathBuf>,
    given: &[i64],
    json: bool,
) -> Result<(), CliError> {
    let (parsed, name) = match file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            (ids::parse(&text), file.display().to_string())
        }
        None if !given.is_empty() => {
            let text: Vec<String> = given.iter().map(|i| i.to_string()).collect();
            (ids::parse(&text.join("\n")), "ids".to_string())
        }
        None => {
            return Err(CliError::Usage(
                "name ids, or a file of them with --file".into(),
            ));
        }
    };
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
        let r: TrackResponse = client
            .send(
                "PUT",
                "/api/v1/admin/properties",
                Some(&TrackRequest {
                    hotel_ids: chunk.to_vec(),
                }),
            )
            .await?;
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
            "file": name,
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
            name,
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
