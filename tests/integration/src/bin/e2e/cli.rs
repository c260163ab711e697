//! The operator CLI against the local stack: typed reads, a followed sync with its summary, an
//! API error printed with its code and a non-zero exit, a network error naming the URL tried.

use super::Ctx;
use cupid_sync::api::wire::{RunPage, StatusView};
use std::process::{Command, Output};

fn cli() -> String {
    std::env::var("CUPID_SYNC_CLI").unwrap_or_else(|_| "target/debug/cupid-sync".into())
}

fn run(c: &Ctx, args: &[&str]) -> Result<Output, String> {
    Command::new(cli())
        .env_remove("ADMIN_TOKEN")
        .env_remove("CUPID_SYNC_API")
        // No config file of the developer's is read.
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("e2e-no-config"),
        )
        .args(["--api", &c.base, "--token", &c.token])
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", cli()))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub async fn checks(c: &mut Ctx) {
    let status = run(c, &["--json", "status"]);
    let parsed = status
        .as_ref()
        .ok()
        .and_then(|o| serde_json::from_slice::<StatusView>(&o.stdout).ok());
    c.check(
        "`cupid-sync status --json` prints the API's typed status",
        parsed.as_ref().is_some_and(|s| s.total_properties == 100),
        status.map(|o| text(&o)).unwrap_or_else(|e| e),
    );

    let follow = run(c, &["sync", "--ids", "1641879,1270324", "--follow"]);
    let ok = follow.as_ref().is_ok_and(|o| {
        let out = String::from_utf8_lossy(&o.stdout);
        o.status.success() && out.contains(" completed in ") && out.contains("2 properties")
    });
    c.check(
        "`cupid-sync sync --ids … --follow` follows the run to its summary",
        ok,
        follow.map(|o| text(&o)).unwrap_or_else(|e| e),
    );

    let logs = run(c, &["--json", "logs", "--limit", "2"]);
    let page = logs
        .as_ref()
        .ok()
        .and_then(|o| serde_json::from_slice::<RunPage>(&o.stdout).ok());
    c.check(
        "`cupid-sync logs --limit 2` lists the newest runs (the followed one first)",
        page.as_ref().is_some_and(|p| {
            p.items.len() == 2
                && p.items[0].total_properties == 2
                && p.items[0].status == "completed"
        }),
        logs.map(|o| text(&o)).unwrap_or_else(|e| e),
    );

    let bad = run(c, &["settings", "set", "sync_batch_size=0"]);
    c.check(
        "an API error prints its code and message and exits non-zero",
        bad.as_ref().is_ok_and(|o| {
            let err = String::from_utf8_lossy(&o.stderr);
            o.status.code() == Some(1)
                && err.contains("API error 400 invalid_setting")
                && err.contains("sync_batch_size")
        }),
        bad.map(|o| text(&o)).unwrap_or_else(|e| e),
    );

    let down = Command::new(cli())
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("e2e-no-config"),
        )
        .args(["--api", "http://127.0.0.1:9", "--token", "x", "health"])
        .output();
    c.check(
        "a network error names the URL it tried",
        down.as_ref().is_ok_and(|o| {
            o.status.code() == Some(1)
                && String::from_utf8_lossy(&o.stderr)
                    .contains("could not reach http://127.0.0.1:9/api/v1/admin/sync/health")
        }),
        down.map(|o| text(&o)).unwrap_or_else(|e| e.to_string()),
    );

    let health = run(c, &["health"]);
    let completions = run(c, &["completions", "bash"]);
    c.check(
        "`cupid-sync health` and shell completions work",
        health.as_ref().is_ok_and(|o| o.status.success())
            && completions.as_ref().is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout).contains("complete -F _cupid__sync")
            }),
        health.map(|o| text(&o)).unwrap_or_else(|e| e),
    );
}
