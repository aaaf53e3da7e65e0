//! `medic init`: write a commented starting config that `medic check` accepts.
//!
//! Without arguments the config supervises medic's own fixture service (a
//! working example from nothing). With `--service NAME --url URL` it watches
//! the user's service over HTTP; with `--command` medic also starts and
//! restarts that service itself, else the restart is an exec action the user
//! adjusts (`systemctl restart NAME` as written).
use std::path::Path;

use crate::codes::{CliError, Code};

pub struct InitOptions {
    pub service: Option<String>,
    pub url: Option<String>,
    pub command: Option<Vec<String>>,
    pub force: bool,
}

/// A YAML string literal (double-quoted, escaped).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The config text for `opts` (pure; [`write`] puts it on disk).
pub fn render(opts: &InitOptions) -> Result<String, CliError> {
    let (service, url, command) = match (&opts.service, &opts.url) {
        (None, None) => (
            "web".to_string(),
            "http://127.0.0.1:18080/healthz".to_string(),
            Some(vec![
                "medic".to_string(),
                "fixture".to_string(),
                "--port".to_string(),
                "18080".to_string(),
            ]),
        ),
        (Some(s), Some(u)) => (s.clone(), u.clone(), opts.command.clone()),
        _ => {
            return Err(CliError::new(
                Code::Usage,
                "--service and --url go together (or give neither for the fixture example)",
            ))
        }
    };
    if service.is_empty()
        || !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CliError::new(
            Code::Usage,
            format!("--service {service:?}: use letters, digits, '-' and '_'"),
        ));
    }
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| CliError::new(Code::Usage, format!("--url {url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::new(
            Code::Usage,
            format!("--url {url}: use an http:// or https:// URL"),
        ));
    }
    if command.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(CliError::new(Code::Usage, "--command is empty"));
    }
    let mut out = String::new();
    out.push_str(
        "# Starting config written by `medic init`. Validate with `medic check -c FILE`,\n\
         # run with `medic run -c FILE` (dry-run: medic says what it would do and does\n\
         # nothing; `--mode aggressive` lets it act). Every field: docs/config.md.\n\n\
         # disabled | dry-run | conservative | aggressive (MEDIC_MODE and --mode override it).\n\
         mode: dry-run\n\n\
         # medic's own HTTP API: /healthz, /metrics, incidents, operator commands.\n\
         listen: 127.0.0.1:9090\n\n\
         # SQLite database beside this file: audit chain, incidents, safety state.\n\
         database: medic.db\n\n\
         # Safety limits (these are the defaults, written out to be tuned).\n\
         policy:\n\
         \x20 cooldown: 5m            # no second restart within 5m of a successful one\n\
         \x20 restart_budget: 3       # at most 3 restarts ...\n\
         \x20 budget_window: 1h       # ... per hour\n\
         \x20 verify_window: 30s      # watch the probe this long after an action\n\n\
         services:\n",
    );
    out.push_str(&format!("  {service}:\n"));
    match &command {
        Some(cmd) => {
            let argv: Vec<String> = cmd.iter().map(|a| q(a)).collect();
            out.push_str(&format!(
                "    # medic starts this process in its own process group and restarts it.\n\
                 \x20   # A program named `medic` is this medic binary.\n\
                 \x20   process:\n\
                 \x20     command: [{}]\n\
                 \x20     stop_grace: 5s         # SIGTERM, then SIGKILL after this long\n",
                argv.join(", ")
            ));
        }
        None => out.push_str(
            "    # No `process:` section: the service runs on its own (systemd, docker, ...)\n\
             \x20   # and medic restarts it with the exec action below.\n",
        ),
    }
    out.push_str("    probes:\n");
    if command.is_some() {
        out.push_str(
            "      alive:\n\
             \x20       process: {}          # the supervised process is running (exits are seen at once)\n\
             \x20       interval: 1s\n",
        );
    }
    out.push_str(&format!(
        "      healthz:\n\
         \x20       http:\n\
         \x20         url: {}\n\
         \x20         expect_status: 200\n\
         \x20         timeout: 2s\n\
         \x20       interval: 5s\n\
         \x20       failure: {{ consecutive: 3, within: 15m }}   # 3 failures in a row open an incident\n\
         \x20       recovery: {{ consecutive: 2 }}               # 2 successes in a row = healthy\n\
         \x20   actions:\n",
        q(&url)
    ));
    match &command {
        Some(_) => out.push_str(
            "      restart:\n\
             \x20       restart: {}          # stop the process group, start it again\n",
        ),
        None => out.push_str(&format!(
            "      restart:\n\
             \x20       # Adjust to how this service is restarted on your machine.\n\
             \x20       exec: {{ command: [\"systemctl\", \"restart\", {}], timeout: 60s }}\n\
             \x20       risk: low\n",
            q(&service)
        )),
    }
    out.push_str("    remediate:\n");
    if command.is_some() {
        out.push_str(
            "      - when: { probe: alive, condition: failing }\n\
             \x20       action: restart\n",
        );
    }
    out.push_str(
        "      - when: { probe: healthz, condition: failing }\n\
         \x20       action: restart\n",
    );
    Ok(out)
}

/// Write the config to `path`; an existing file is kept unless `force`.
pub fn write(path: &Path, opts: &InitOptions) -> Result<(), CliError> {
    let text = render(opts)?;
    if path.exists() && !opts.force {
        return Err(CliError::new(
            Code::InitExists,
            format!(
                "{}: already exists; not overwritten (--force replaces it)",
                path.display()
            ),
        ));
    }
    std::fs::write(path, text)
        .map_err(|e| CliError::new(Code::Io, format!("{}: {e}", path.display())))?;
    Ok(())
}
