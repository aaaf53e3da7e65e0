//! The store test suite runs every test against both backends: a SQLite
//! file in a temp dir and a Postgres server of its own ([`pg::PgServer`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pg;

use std::path::{Path, PathBuf};

use medic_store::{verify_audit_target, Store, StoreError, StoreTarget, VerifyReport};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;

/// One backend's fresh, empty database.
pub struct TestDb {
    /// `"sqlite"` or `"postgres"`, for failure messages.
    pub name: &'static str,
    dir: tempfile::TempDir,
    pg: Option<pg::PgServer>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb {
            name: "sqlite",
            dir: tempfile::tempdir().unwrap(),
            pg: None,
        }
    }

    /// `None` when Postgres is not installed and `CI` is unset (see [`pg`]).
    pub async fn postgres() -> Option<TestDb> {
        Some(TestDb {
            name: "postgres",
            dir: tempfile::tempdir().unwrap(),
            pg: Some(pg::PgServer::start().await?),
        })
    }

    /// SQLite, then Postgres.
    pub async fn all() -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite()];
        v.extend(TestDb::postgres().await);
        v
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    pub fn pg(&self) -> Option<&pg::PgServer> {
        self.pg.as_ref()
    }

    pub fn pg_mut(&mut self) -> Option<&mut pg::PgServer> {
        self.pg.as_mut()
    }

    /// The SQLite file (also a scratch dir for Postgres).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("medic.db")
    }

    pub fn target(&self) -> StoreTarget {
        match &self.pg {
            Some(pg) => StoreTarget::Postgres(pg.url()),
            None => StoreTarget::Sqlite(self.path()),
        }
    }

    /// Every file the database lives in (the SQLite dir or the Postgres data dir).
    pub fn files_dir(&self) -> &Path {
        match &self.pg {
            Some(pg) => pg.dir(),
            None => self.dir.path(),
        }
    }

    pub async fn try_open(&self) -> Result<Store, StoreError> {
        Store::open_target(&self.target()).await
    }

    pub async fn open(&self) -> Store {
        let s = self.try_open().await.unwrap();
        assert_eq!(s.backend(), self.name);
        s
    }

    pub async fn verify(&self) -> VerifyReport {
        self.try_verify().await.unwrap()
    }

    pub async fn try_verify(&self) -> Result<VerifyReport, StoreError> {
        verify_audit_target(&self.target()).await
    }

    /// Runs plain SQL against the database, as an attacker with direct
    /// access would (several statements allowed).
    pub async fn tamper(&self, sql: &str) {
        match &self.pg {
            Some(pg) => pg.exec(sql).await,
            None => {
                let opts = SqliteConnectOptions::new().filename(self.path());
                let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}
