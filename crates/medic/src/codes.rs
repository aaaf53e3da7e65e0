//! The CLI's stable error codes (E0001–E0399; the API uses E0400–E0599).
//! Every user-facing failure prints `error[E0xxx]: message` and exits non-zero.
use std::fmt;

macro_rules! cli_codes {
    ($( $variant:ident = ($code:literal, $name:literal, $exit:literal, $desc:literal) ),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $( #[doc = $desc] $variant ),* }

        /// (code, name, exit status, description) for docs and tests.
        #[cfg_attr(not(test), allow(dead_code))]
        pub const CLI_CODES: &[(&str, &str, u8, &str)] = &[ $( ($code, $name, $exit, $desc) ),* ];

        impl Code {
            pub fn code(self) -> &'static str { match self { $( Code::$variant => $code ),* } }
            pub fn exit(self) -> u8 { match self { $( Code::$variant => $exit ),* } }
        }
    };
}

cli_codes! {
    Config = ("E0001", "config_invalid", 2, "The config file is invalid; each problem is printed as FILE:LINE:COL: message."),
    Usage = ("E0002", "usage", 2, "A command-line argument or environment variable (MEDIC_MODE) is invalid."),
    NotFound = ("E0003", "not_found", 2, "A file named on the command line does not exist."),
    Unreachable = ("E0004", "unreachable", 3, "medic's API (or another target) could not be reached."),
    Api = ("E0005", "api_error", 3, "medic's API answered with an error."),
    AuditBroken = ("E0010", "audit_broken", 1, "The audit hash chain does not verify; the first bad seq is named."),
    Store = ("E0011", "store_error", 1, "The database could not be read or written."),
    Startup = ("E0020", "startup_failed", 1, "The daemon could not start (database, port, supervised process)."),
    Demo = ("E0021", "demo_failed", 1, "The demo could not run to the end."),
    Eval = ("E0030", "eval_failed", 1, "An evaluation or benchmark failed (bad data directory or file)."),
    Token = ("E0040", "token_error", 1, "A token command failed: bad or taken name, or no active token to revoke."),
    BacktestUsage = ("E0050", "backtest_usage", 2, "medic backtest: a bad argument (unknown or log rule, bad --from/--to/--step, --prometheus without --from/--to)."),
    BacktestData = ("E0051", "backtest_data", 1, "medic backtest: a recorded-data file is missing or malformed (file and line named)."),
    BacktestUnreachable = ("E0052", "backtest_unreachable", 3, "medic backtest: the Prometheus server could not be reached."),
    BacktestSource = ("E0053", "backtest_source", 1, "medic backtest: Prometheus answered with an error or an unexpected shape (its message is printed)."),
    BacktestPlot = ("E0054", "backtest_plot", 1, "medic backtest: a plot could not be written."),
    EvalRca = ("E0060", "eval_rca_failed", 1, "`medic eval rca` or `medic bench rca` failed: bad data directory or file (named with line and column), or bad arguments."),
    PatternNotFound = ("E0061", "pattern_not_found", 2, "`medic patterns show` names no known pattern."),
    CandidateNotFound = ("E0062", "candidate_not_found", 2, "`medic patterns accept|reject` names no candidate pattern."),
    InitExists = ("E0070", "init_exists", 2, "`medic init` would overwrite an existing file (use --force)."),
    BenchFailed = ("E0071", "bench_failed", 1, "A `medic bench mttr|scale|overhead` run could not set up or run (a peer missing, a port, a process)."),
    DrillRefused = ("E0072", "drill_refused", 1, "`medic drill` did not inject: outside the drill window, blocked by governance (kill switch, freeze, pause, mode), or drills stopped after a failed drill."),
    DrillFailed = ("E0073", "drill_failed", 1, "A drill ran but medic did not heal the injected fault in time; drills are stopped until an operator resets them."),
    NotifyFailed = ("E0080", "notify_failed", 1, "medic notify test: a channel did not accept the test message in time (it stays queued; the error is printed)."),
    NotifyBench = ("E0081", "notify_bench_failed", 1, "medic bench notify: a notification was lost, duplicated or reordered, delivery did not resume within one capped retry after `--outage`, or the loopback receivers could not start."),
    BenchRecovery = ("E0090", "bench_recovery", 1, "medic bench recovery: a trial could not run (medic or the fixture did not start, or medic did not reach its failure point)."),
    HaNotConfigured = ("E0110", "ha_not_configured", 2, "`medic cluster`: the config has no `ha:` section."),
    EtcdUnreachable = ("E0111", "etcd_unreachable", 3, "`medic cluster`: no etcd endpoint of `ha.etcd` answered in time."),
    BenchFailover = ("E0112", "bench_failover", 1, "medic bench failover: a trial could not run (etcd, the fixture or a medic did not start, no leader was elected, or the leader started no action)."),
    LockKey = ("E0130", "lock_key_invalid", 2, "`medic locks release`: the key is not `scope:target` (scope: system, service, incident or deployment)."),
    LockNotHeld = ("E0131", "lock_not_held", 1, "`medic locks release`: no lock is held on this key (the API answered E0490)."),
    FloodFailed = ("E0140", "bench_flood_failed", 1, "medic bench flood could not set up or run (medic or the fixture did not start, bad arguments)."),
    FloodGoal = ("E0141", "bench_flood_goal_missed", 1, "medic bench flood ran but a goal was missed: a critical or high alert did not reach the engine, the fault was not healed, RSS exceeded the bound, or the API or the receiver refused a request."),
    Io = ("E0099", "io_error", 1, "An operating-system error."),
    StoreUrl = ("E0100", "store_url_invalid", 2, "A Postgres store URL on the command line is invalid (expected postgres://user@host:port/database); the password is never printed."),
    BenchStore = ("E0101", "bench_store_failed", 1, "medic bench store: a run could not set up or finish (no Postgres binaries, initdb/postgres failed, or the audit chain did not verify afterwards)."),
    BenchCanary = ("E0125", "bench_canary_usage", 2, "medic bench canary: a bad argument (--iterations, --trials and --canary must be at least 1)."),
    ChangeInvalid = ("E0157", "change_invalid", 2, "`medic change record`: `--service` is empty, or the API refused a field (`--kind`, `--version`, `--note`; the API's E0422 message is printed)."),
    ScenarioInvalid = ("E0160", "rca_scenario_invalid", 2, "`medic eval rca --scenarios DIR`: a scenario file is malformed (FILE:LINE:COL: message) or the directory holds no readable `.yaml` file."),
    ScenarioFailed = ("E0161", "rca_scenario_failed", 1, "`medic eval rca --scenarios DIR`: a scenario's ranked causes, verdict, pattern, band, evidence or decisions differ from its `expect` (each difference printed with its file)."),
    ChangeServiceUnknown = ("E0158", "change_service_unknown", 1, "`medic change record`: the config of the running medic has no such service (the API answered E0482)."),
    ChangeListInvalid = ("E0170", "change_list_invalid", 2, "`medic change list`: `--service` is empty or `--limit` is not between 1 and 500 (the API's E0422 message is printed)."),
}

#[derive(Debug)]
pub struct CliError {
    pub code: Code,
    pub message: String,
}

impl CliError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    pub fn config(e: medic_config::ConfigError) -> Self {
        CliError::new(Code::Config, e.to_string())
    }

    pub fn exit_code(&self) -> u8 {
        self.code.exit()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Config errors are already one `FILE:LINE:COL: message` per line.
        if self.code == Code::Config {
            write!(
                f,
                "{}\nerror[{}]: invalid configuration",
                self.message,
                self.code.code()
            )
        } else {
            write!(f, "error[{}]: {}", self.code.code(), self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_documented() {
        let mut codes: Vec<&str> = CLI_CODES.iter().map(|c| c.0).collect();
        let mut names: Vec<&str> = CLI_CODES.iter().map(|c| c.1).collect();
        codes.sort_unstable();
        names.sort_unstable();
        let n = codes.len();
        codes.dedup();
        names.dedup();
        assert_eq!(codes.len(), n);
        assert_eq!(names.len(), n);
        let docs = include_str!("../../../docs/errors.md");
        for (code, name, _, _) in CLI_CODES {
            assert!(
                docs.contains(code) && docs.contains(name),
                "{code} {name} missing from docs/errors.md"
            );
        }
        for c in medic_api::CODES {
            assert!(
                docs.contains(c.code) && docs.contains(c.name),
                "{} missing from docs/errors.md",
                c.code
            );
        }
    }
}
