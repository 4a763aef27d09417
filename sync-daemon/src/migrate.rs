//! The SQL schema (`migrations/` at the workspace root), embedded at build time and applied
//! with refinery.

use anyhow::Context;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// An arbitrary constant: the advisory lock that keeps two daemons from migrating at once.
const MIGRATION_LOCK: i64 = 0x6c_696b_6573_6d69;

/// Applies every migration not applied yet. Safe to run from several daemons at once.
pub async fn migrate(postgres_url: &str) -> anyhow::Result<()> {
    let (mut client, connection) = tokio_postgres::connect(postgres_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL for migrations")?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("taking the migration lock")?;
    let report = embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .context("running migrations");
    // Closing the session releases the advisory lock.
    drop(client);
    let _ = driver.await;
    for m in report?.applied_migrations() {
        tracing::info!(migration = %m, "applied");
    }
    Ok(())
}
