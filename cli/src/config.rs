//! Where the CLI finds its API and token: `--api` / `--token`, then `CUPID_SYNC_API` /
//! `ADMIN_TOKEN` (both read by clap), then a config file, then the local stack's address.
//!
//! The file is TOML: `api = "https://…"` and `token = "…"`, at `--config`, `$CUPID_SYNC_CONFIG`,
//! or `$XDG_CONFIG_HOME/cupid-sync/config.toml` (`~/.config/cupid-sync/config.toml`).

use crate::client::CliError;
use std::path::PathBuf;

pub const DEFAULT_API: &str = "http://localhost:8080";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub api: Option<String>,
    pub token: Option<String>,
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("cupid-sync").join("config.toml"))
}

/// The file named (must exist), or the default one (may be absent).
pub fn load(named: Option<&PathBuf>) -> Result<(File, Option<PathBuf>), CliError> {
    let (path, required) = match named {
        Some(p) => (Some(p.clone()), true),
        None => (default_path(), false),
    };
    let Some(path) = path else {
        return Ok((File::default(), None));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map(|f| (f, Some(path.clone())))
            .map_err(|e| CliError::Usage(format!("config file {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok((File::default(), None))
        }
        Err(e) => Err(CliError::Usage(format!(
            "cannot read config file {}: {e}",
            path.display()
        ))),
    }
}

/// Flags and environment first (clap has read both), then the file, then the default.
pub fn resolve(
    api: Option<String>,
    token: Option<String>,
    file: &File,
) -> (String, Option<String>) {
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    (
        nonempty(api)
            .or_else(|| nonempty(file.api.clone()))
            .unwrap_or_else(|| DEFAULT_API.to_string()),
        nonempty(token).or_else(|| nonempty(file.token.clone())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env_win_over_the_file_which_wins_over_the_default() {
        let file = File {
            api: Some("https://from-file".into()),
            token: Some("file-token".into()),
        };
        assert_eq!(
            resolve(Some("https://flag".into()), Some("t".into()), &file),
            ("https://flag".to_string(), Some("t".to_string()))
        );
        assert_eq!(
            resolve(None, None, &file),
            (
                "https://from-file".to_string(),
                Some("file-token".to_string())
            )
        );
        assert_eq!(
            resolve(Some(String::new()), None, &File::default()),
            (DEFAULT_API.to_string(), None)
        );
    }

    #[test]
    fn a_named_file_must_exist_and_parse() {
        let missing = PathBuf::from("/nonexistent/cupid-sync.toml");
        assert!(load(Some(&missing)).is_err());
        let dir = std::env::temp_dir().join(format!("cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, "api = \"https://x\"\ntoken = \"y\"\n").unwrap();
        let (f, at) = load(Some(&p)).unwrap();
        assert_eq!(
            (f.api.as_deref(), f.token.as_deref()),
            (Some("https://x"), Some("y"))
        );
        assert_eq!(at, Some(p.clone()));
        std::fs::write(&p, "apii = 1\n").unwrap();
        assert!(load(Some(&p)).is_err(), "unknown keys are refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
