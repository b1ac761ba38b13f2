//! The durable store: SQLite in WAL mode, every acknowledged message fsynced, concurrent
//! inserts grouped into one transaction.
//!
//! One writer thread owns the write connection. Inserts queue on a channel; the writer takes
//! everything queued (up to `MAX_BATCH`), runs it in one `BEGIN IMMEDIATE` transaction, commits
//! (with `synchronous = FULL` the commit is on disk when it returns), and only then answers
//! each waiter. While one commit is being fsynced the next batch gathers, so many concurrent
//! writers share one fsync: group commit. If the transaction fails, nothing of the batch is
//! kept and every waiter gets [`StoreError::Unavailable`]: nothing is acknowledged that is not
//! on disk.
//!
//! Reads (`list`) use their own connection on the blocking pool; WAL lets them run while the
//! writer commits. After each commit the writer publishes the batch's messages and its largest
//! rowid as the newest seq ([`Store::subscribe`]). The health probe ([`Store::check`]) goes through the writer too: it writes
//! and commits one row of its own table, so it fails exactly when inserts would.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::Context as _;
use prometheus_client::{
    metrics::histogram::{Histogram, exponential_buckets},
    registry::Registry,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::{
    Cursor, DedupBy, Inserted, NewMessage, Publisher, Store, StoreError, Stored, Subscription,
    text_hash,
};

/// The most inserts one transaction takes.
const MAX_BATCH: usize = 512;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS messages (
        -- The message's UUID, 16 bytes: the idempotency key.
        id        BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
        text      TEXT NOT NULL,
        -- `text_hash(text)`, for the text rule's O(1) look-up (see `migrate`).
        text_hash INTEGER,
        -- When it was stored, in milliseconds since the epoch (NULL: stored before times
        -- were kept; see `migrate`).
        stored_at INTEGER
    );
    -- Insertion order is rowid order: rows are never deleted, so rowids only grow.
    -- One row, rewritten by the health probe: proof that a write can be committed.
    CREATE TABLE IF NOT EXISTS health_probe (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at INTEGER NOT NULL
    );
";

/// One queued insert and where its answer goes.
struct Write {
    message: NewMessage,
    reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// What the writer thread is asked to do.
enum Job {
    /// Insert a message (grouped with the others queued).
    Insert(Write),
    /// Commit a write of the probe row and say whether it worked.
    Probe(oneshot::Sender<Result<(), StoreError>>),
}

/// Messages in a SQLite file. See the module documentation.
#[derive(Debug)]
pub struct SqliteStore {
    /// The file, for messages.
    path: PathBuf,
    /// Inserts to the writer thread; `None` once closed.
    writes: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    /// The writer thread, joined by [`SqliteStore::close`].
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The read connection; `None` once closed.
    reader: Arc<Mutex<Option<Connection>>>,
    /// Turns on the read connection: one read at a time.
    reads: tokio::sync::Semaphore,
    /// Transactions committed, for tests and stats: fewer than inserts when grouping works.
    commits: Arc<AtomicU64>,
    /// Inserts per committed transaction (`store_commit_batch_size`).
    batch_sizes: Histogram,
    /// Tells subscribers of each commit; the writer publishes after it commits.
    publisher: Arc<Publisher>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("id", &self.message.id)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts the writer, which applies
    /// `dedup_by`. Fails, with the reason, if the file cannot be created or written, or is not a
    /// usable database.
    pub fn open(path: impl AsRef<Path>, dedup_by: DedupBy) -> anyhow::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let writer = open_connection(&path, true)
            .with_context(|| format!("cannot open the message database {}", path.display()))?;
        let reader = open_connection(&path, false)
            .with_context(|| format!("cannot open the message database {}", path.display()))?;
        let newest: i64 = reader
            .query_row("SELECT coalesce(max(rowid), 0) FROM messages", [], |row| {
                row.get(0)
            })
            .with_context(|| format!("cannot read the message database {}", path.display()))?;
        let publisher = Arc::new(Publisher::new(u64::try_from(newest).unwrap_or(0)));
        let commits = Arc::new(AtomicU64::new(0));
        // 1, 2, 4 ... 512 (MAX_BATCH) inserts.
        let batch_sizes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let (writes, queue) = mpsc::unbounded_channel();
        let thread = {
            let committed = Committed {
                commits: Arc::clone(&commits),
                batch_sizes: batch_sizes.clone(),
                publisher: Arc::clone(&publisher),
            };
            std::thread::Builder::new()
                .name("sqlite-writer".to_owned())
                .spawn({
                    let path = path.clone();
                    move || write_loop(writer, &path, queue, &committed, dedup_by)
                })
                .context("cannot start the database writer thread")?
        };
        tracing::info!(path = %path.display(), "message database open");
        Ok(Self {
            path,
            writes: Mutex::new(Some(writes)),
            writer: Mutex::new(Some(thread)),
            reader: Arc::new(Mutex::new(Some(reader))),
            reads: tokio::sync::Semaphore::new(1),
            commits,
            batch_sizes,
            publisher,
        })
    }

    /// Transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues a job for the writer, or says the store is closed.
    fn send(&self, job: Job) -> Result<(), StoreError> {
        let sent = self
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|writes| writes.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(StoreError::Unavailable("the store is closed".to_owned())),
        }
    }

    /// Stops taking inserts, closes the read connection, and hands back the writer thread,
    /// which finishes every queued insert and closes the database (the last connection to
    /// close folds the write-ahead log back into the file); `None` if already closed.
    fn stop_writer(&self) -> Option<(JoinHandle<()>, PathBuf)> {
        drop(
            self.reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        drop(
            self.writes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|thread| (thread, self.path.clone()))
    }
}

/// Waits for the writer thread to finish (blocking).
fn join_writer((thread, path): (JoinHandle<()>, PathBuf)) {
    if thread.join().is_err() {
        tracing::error!("the database writer thread panicked");
    }
    tracing::info!(path = %path.display(), "message database closed");
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(writer) = self.stop_writer() {
            join_writer(writer);
        }
    }
}

/// Opens one connection with the settings every connection needs. The writer also sets the
/// journal mode and creates the schema, so a read-only or corrupt file fails here, at start.
fn open_connection(path: &Path, writer: bool) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    if writer {
        let mode: String =
            connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "the database refused WAL mode (journal_mode is {mode})"
            )));
        }
        connection.execute_batch(SCHEMA)?;
        migrate(&connection)?;
    }
    // In WAL mode, FULL syncs the log on every commit: a commit that returned is on disk.
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Touch the table, so a file that is not a database is found now, not on first use.
    connection.query_row("SELECT count(*) FROM messages", [], |row| {
        row.get::<_, i64>(0)
    })?;
    Ok(connection)
}

/// Brings a database written by an earlier version up to date: adds the `stored_at` column
/// (the rows already there keep no time: it was never recorded), and the `text_hash` column,
/// filled for every row and indexed. Idempotent; a no-op on a current database.
fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    let has_time: bool = connection.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('messages') WHERE name = 'stored_at'",
        [],
        |row| row.get(0),
    )?;
    if !has_time {
        tracing::info!("adding the time of storing to the message database");
        connection.execute_batch("ALTER TABLE messages ADD COLUMN stored_at INTEGER")?;
    }
    let has_hash: bool = connection.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('messages') WHERE name = 'text_hash'",
        [],
        |row| row.get(0),
    )?;
    if !has_hash {
        tracing::info!("adding the text index to the message database");
        connection.execute_batch("ALTER TABLE messages ADD COLUMN text_hash INTEGER")?;
    }
    let mut missing =
        connection.prepare("SELECT rowid, text FROM messages WHERE text_hash IS NULL")?;
    let rows = missing
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !rows.is_empty() {
        connection.execute_batch("BEGIN IMMEDIATE")?;
        let filled = (|| {
            let mut fill =
                connection.prepare("UPDATE messages SET text_hash = ?1 WHERE rowid = ?2")?;
            for (rowid, text) in &rows {
                fill.execute(params![text_hash(text), rowid])?;
            }
            Ok::<_, rusqlite::Error>(())
        })();
        connection.execute_batch(if filled.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        filled?;
    }
    connection
        .execute_batch("CREATE INDEX IF NOT EXISTS messages_by_text_hash ON messages (text_hash)")
}

/// Where the writer tells of each commit.
struct Committed {
    /// Counts the commits.
    commits: Arc<AtomicU64>,
    /// Takes each commit's size.
    batch_sizes: Histogram,
    /// Tells subscribers what was committed.
    publisher: Arc<Publisher>,
}

/// Takes `first` and whatever else is queued now into `batch` (at most [`MAX_BATCH`] inserts)
/// and `probes`, without waiting for more.
fn gather(
    first: Job,
    queue: &mut mpsc::UnboundedReceiver<Job>,
    batch: &mut Vec<Write>,
    probes: &mut Vec<oneshot::Sender<Result<(), StoreError>>>,
) {
    let mut next = Some(first);
    while let Some(job) = next.take() {
        match job {
            Job::Insert(write) => batch.push(write),
            Job::Probe(reply) => probes.push(reply),
        }
        if batch.len() < MAX_BATCH {
            next = queue.try_recv().ok();
        }
    }
}

/// The writer: takes what is queued, group-commits the inserts, answers the probes. After a
/// failed commit the connection is opened again before the next one: a file that was not
/// writable when it was opened stays read-only for that connection, so only a new one sees it
/// writable again once the cause is gone.
fn write_loop(
    mut connection: Connection,
    path: &Path,
    mut queue: mpsc::UnboundedReceiver<Job>,
    committed: &Committed,
    dedup_by: DedupBy,
) {
    let mut broken = false;
    let Committed {
        commits,
        batch_sizes,
        publisher,
    } = committed;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut probes = Vec::new();
    // `blocking_recv` returns `None` once every sender is gone and the queue is empty, so a
    // close finishes what was queued before it.
    while let Some(first) = queue.blocking_recv() {
        gather(first, &mut queue, &mut batch, &mut probes);
        if broken {
            match open_connection(path, true) {
                Ok(reopened) => {
                    tracing::info!("the database connection was opened again");
                    connection = reopened;
                    broken = false;
                }
                Err(error) => {
                    tracing::warn!(%error, "the database cannot be opened again yet");
                    let error = error.to_string();
                    for reply in probes.drain(..) {
                        let _ = reply.send(Err(StoreError::Unavailable(error.clone())));
                    }
                    for write in batch.drain(..) {
                        let _ = write
                            .reply
                            .send(Err(StoreError::Unavailable(error.clone())));
                    }
                    continue;
                }
            }
        }
        if !probes.is_empty() {
            let result = probe(&mut connection).map_err(|error| {
                broken = true;
                tracing::warn!(%error, "the database cannot commit a write");
                StoreError::Unavailable(error.to_string())
            });
            for reply in probes.drain(..) {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(()),
                    Err(error) => Err(StoreError::Unavailable(error.to_string())),
                });
            }
        }
        if batch.is_empty() {
            continue;
        }
        let outcome = write_batch(
            &mut connection,
            &batch,
            dedup_by,
            publisher.wants_messages(),
        );
        match outcome {
            Ok((results, stored)) => {
                commits.fetch_add(1, Ordering::Relaxed);
                batch_sizes.observe(batch.len() as f64);
                if let Some(last) = stored.last_rowid {
                    publisher.publish(stored.messages, last);
                }
                tracing::debug!(size = batch.len(), "batch committed");
                for (write, result) in batch.drain(..).zip(results) {
                    let _ = write.reply.send(result);
                }
            }
            Err(error) => {
                broken = true;
                tracing::error!(%error, size = batch.len(), "batch not committed");
                for write in batch.drain(..) {
                    let _ = write
                        .reply
                        .send(Err(StoreError::Unavailable(error.to_string())));
                }
            }
        }
    }
    if let Err((_, error)) = connection.close() {
        tracing::error!(%error, "closing the database failed");
    }
}

/// Writes and commits the probe row.
fn probe(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute(
        "INSERT INTO health_probe (id, checked_at) VALUES (1, unixepoch())
         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        [],
    )?;
    transaction.commit()
}

/// What one insert of a batch did.
type InsertOutcome = Result<Inserted, StoreError>;

/// What one batch stored: its largest rowid (`None`: nothing new), and the messages when they
/// were asked for (to publish).
#[derive(Debug, Default)]
struct StoredBatch {
    last_rowid: Option<u64>,
    messages: Vec<Stored>,
}

/// Runs one batch in one transaction, giving each insert's outcome and what it stored (with the
/// messages themselves if `keep`). `Err` means nothing of it was committed.
fn write_batch(
    connection: &mut Connection,
    batch: &[Write],
    dedup_by: DedupBy,
    keep: bool,
) -> rusqlite::Result<(Vec<InsertOutcome>, StoredBatch)> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    let mut stored = StoredBatch::default();
    {
        // Insert first: a new id (the common case) costs one statement. Only when the id is
        // already held is its text read, to tell a duplicate from a conflict.
        let mut insert = transaction.prepare_cached(
            "INSERT INTO messages (id, text, text_hash, stored_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO NOTHING",
        )?;
        let mut find = transaction.prepare_cached("SELECT text FROM messages WHERE id = ?1")?;
        let mut find_text = transaction.prepare_cached(
            "SELECT id FROM messages WHERE text_hash = ?1 AND text = ?2 ORDER BY rowid LIMIT 1",
        )?;
        // The batch's time: it commits at once after these statements.
        let now = super::now_ms();
        let now_sql = i64::try_from(now).unwrap_or(i64::MAX);
        for write in batch {
            let NewMessage { id, text } = &write.message;
            let key = id.as_bytes().as_slice();
            let hash = text_hash(text.as_str());
            // The text rule: a text held under any id is a duplicate, unless this id holds
            // another text (a conflict, as under the id rule). One indexed look-up; the rows
            // this batch inserted are seen, so one text in one batch is stored once too.
            let held_under = if dedup_by == DedupBy::Text {
                find_text
                    .query_row(params![hash, text.as_str()], |row| row.get::<_, Vec<u8>>(0))
                    .optional()?
            } else {
                None
            };
            if let Some(held_under) = held_under {
                let held: Option<String> =
                    find.query_row(params![key], |row| row.get(0)).optional()?;
                let held_under = uuid::Uuid::from_slice(&held_under).unwrap_or_default();
                results.push(match held {
                    Some(held) if held != text.as_str() => Err(StoreError::Conflict { id: *id }),
                    Some(_) => Ok(Inserted::Duplicate),
                    // The text is held under another id (under this one, `find` finds it).
                    None => Ok(Inserted::DuplicateOf(held_under)),
                });
                continue;
            }
            if insert.execute(params![key, text.as_str(), hash, now_sql])? == 1 {
                // Rowids grow within the one writer, so the last is the largest.
                let seq = u64::try_from(transaction.last_insert_rowid()).unwrap_or_default();
                stored.last_rowid = Some(seq);
                if keep {
                    stored.messages.push(Stored {
                        seq,
                        id: *id,
                        text: text.as_str().to_owned(),
                        stored_at_ms: Some(now),
                    });
                }
                results.push(Ok(Inserted::Stored));
                continue;
            }
            let held: String = find.query_row(params![key], |row| row.get(0))?;
            results.push(if held == text.as_str() {
                Ok(Inserted::Duplicate)
            } else {
                Err(StoreError::Conflict { id: *id })
            });
        }
    }
    transaction.commit()?;
    Ok((results, stored))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Insert(Write { message, reply }))?;
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the writer stopped".to_owned())))
    }

    fn subscribe(&self) -> Subscription {
        self.publisher.subscribe()
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "store_commit_batch_size",
            "Inserts per committed SQLite transaction (group commit)",
            self.batch_sizes.clone(),
        );
    }

    async fn check(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Probe(reply))?;
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the writer stopped".to_owned())))
    }

    async fn close(&self) {
        if let Some(writer) = self.stop_writer() {
            // Joining the writer blocks: do it where blocking is allowed.
            if let Err(error) = tokio::task::spawn_blocking(move || join_writer(writer)).await {
                tracing::error!(%error, "closing the database failed");
            }
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.read(|connection| {
            let mut query =
                connection.prepare_cached("SELECT text FROM messages ORDER BY rowid")?;
            query
                .query_map([], |row| row.get::<_, String>(0))?
                .collect()
        })
        .await
    }

    async fn page(&self, cursor: Cursor, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |connection| {
            // The rowid is the seq: rows are never deleted and the file is never vacuumed, so
            // rowids only grow and never change. Either way the read is one range of the
            // rowid b-tree.
            let (sql, bound) = match cursor {
                Cursor::After(seq) => (
                    "SELECT rowid, id, text, stored_at FROM messages WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                    seq,
                ),
                Cursor::Before(seq) => (
                    "SELECT rowid, id, text, stored_at FROM messages WHERE rowid < ?1 ORDER BY rowid DESC LIMIT ?2",
                    seq,
                ),
            };
            let bound = i64::try_from(bound).unwrap_or(i64::MAX);
            let mut query = connection.prepare_cached(sql)?;
            let mut page = query
                .query_map(params![bound, limit], |row| {
                    let seq: i64 = row.get(0)?;
                    let id: Vec<u8> = row.get(1)?;
                    Ok(Stored {
                        seq: u64::try_from(seq).unwrap_or_default(),
                        id: uuid::Uuid::from_slice(&id).unwrap_or_default(),
                        text: row.get(2)?,
                        stored_at_ms: row
                            .get::<_, Option<i64>>(3)?
                            .and_then(|at| u64::try_from(at).ok()),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if matches!(cursor, Cursor::Before(_)) {
                page.reverse();
            }
            Ok(page)
        })
        .await
    }
}

impl SqliteStore {
    /// Runs `query` on the read connection, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        // One read at a time holds the one read connection; the others wait here, as tasks,
        // rather than each on a blocking thread of its own (a storm of reads would otherwise
        // take hundreds of threads, all waiting on the connection's lock).
        let _turn = self
            .reads
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".to_owned()))?;
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let guard = reader.lock().unwrap_or_else(PoisonError::into_inner);
            match guard.as_ref() {
                Some(connection) => {
                    query(connection).map_err(|error| StoreError::Unavailable(error.to_string()))
                }
                None => Err(StoreError::Unavailable("the store is closed".to_owned())),
            }
        })
        .await
        .map_err(|error| StoreError::Unavailable(error.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use msglog_common::testing::TempDir;
    use msglog_proto::MessageText;
    use uuid::Uuid;

    use super::*;

    async fn open(dir: PathBuf, dedup_by: DedupBy) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(dir.join("messages.sqlite3"), dedup_by).unwrap())
    }

    store_contract_tests!(open, durable);

    /// A database path in a directory removed when the guard drops.
    fn temp_db() -> (TempDir, PathBuf) {
        let dir = TempDir::new("msglog-sqlite");
        let path = dir.join("messages.sqlite3");
        (dir, path)
    }

    fn message(n: u128, text: &str) -> NewMessage {
        NewMessage {
            id: Uuid::from_u128(n),
            text: MessageText::parse(text.to_owned(), 1 << 20).unwrap(),
        }
    }

    #[test]
    fn every_connection_logs_ahead_and_syncs_each_commit_to_disk() {
        let dir = TempDir::new("msglog-sqlite-pragmas");
        let path = dir.join("messages.sqlite3");
        for writer in [true, false] {
            let connection = open_connection(&path, writer).unwrap();
            let mode: String = connection
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                .unwrap();
            assert_eq!(mode, "wal", "writer {writer}");
            // 2 is FULL: in WAL mode, every commit syncs the log before it returns.
            let synchronous: i64 = connection
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
                .unwrap();
            assert_eq!(synchronous, 2, "writer {writer}");
        }
    }

    #[tokio::test]
    async fn an_insert_is_answered_only_once_its_commit_is_visible_to_another_connection() {
        let dir = TempDir::new("msglog-sqlite-commit");
        let path = dir.join("messages.sqlite3");
        let store = SqliteStore::open(&path, DedupBy::Id).unwrap();
        // A connection of its own, as another process would read the file.
        let other = Connection::open(&path).unwrap();
        for n in 1..=20_u128 {
            let inserted = store.insert(message(n, &format!("m{n}"))).await.unwrap();
            assert_eq!(inserted, Inserted::Stored);
            let seen: i64 = other
                .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
                .unwrap();
            assert_eq!(
                seen, n as i64,
                "message {n} answered before it was committed"
            );
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_database_from_before_the_text_index_gets_it_and_its_texts_count() {
        let (_dir, path) = temp_db();
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE messages (
                     id   BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
                     text TEXT NOT NULL
                 );",
            )
            .unwrap();
            for (n, text) in [(1_u128, "older"), (2, "oldest")] {
                old.execute(
                    "INSERT INTO messages (id, text) VALUES (?1, ?2)",
                    params![Uuid::from_u128(n).as_bytes().as_slice(), text],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path, DedupBy::Text).unwrap();
        assert_eq!(
            store.insert(message(9, "oldest")).await.unwrap(),
            Inserted::DuplicateOf(Uuid::from_u128(2)),
            "a text stored before the index is found by it"
        );
        assert_eq!(
            store.insert(message(10, "new")).await.unwrap(),
            Inserted::Stored
        );
        assert_eq!(store.list().await.unwrap(), vec!["older", "oldest", "new"]);
        store.close().await;
        let check = Connection::open(&path).unwrap();
        let unhashed: i64 = check
            .query_row(
                "SELECT count(*) FROM messages WHERE text_hash IS NULL",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(unhashed, 0);
    }

    #[tokio::test]
    async fn a_database_from_before_times_were_kept_opens_its_rows_keep_no_time_and_new_ones_do() {
        let (_dir, path) = temp_db();
        {
            // The previous version's schema, with rows and its index.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE messages (
                     id        BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
                     text      TEXT NOT NULL,
                     text_hash INTEGER
                 );
                 CREATE INDEX messages_by_text_hash ON messages (text_hash);",
            )
            .unwrap();
            for (n, text) in [(1_u128, "kept before"), (2, "also before")] {
                old.execute(
                    "INSERT INTO messages (id, text, text_hash) VALUES (?1, ?2, ?3)",
                    params![
                        Uuid::from_u128(n).as_bytes().as_slice(),
                        text,
                        text_hash(text)
                    ],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path, DedupBy::Text).unwrap();
        assert_eq!(
            store.insert(message(9, "kept before")).await.unwrap(),
            Inserted::DuplicateOf(Uuid::from_u128(1))
        );
        let before = crate::store::now_ms();
        store.insert(message(10, "new")).await.unwrap();
        let page = store.page(Cursor::After(0), 10).await.unwrap();
        let texts: Vec<_> = page.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["kept before", "also before", "new"]);
        assert_eq!(page[0].stored_at_ms, None, "never recorded");
        assert_eq!(page[1].stored_at_ms, None);
        assert!(
            page[2].stored_at_ms.is_some_and(|at| at >= before),
            "{page:?}"
        );
        store.close().await;
        // Opening it again changes nothing.
        let store = SqliteStore::open(&path, DedupBy::Text).unwrap();
        assert_eq!(store.page(Cursor::After(0), 10).await.unwrap(), page);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_share_commits() {
        let (_dir, path) = temp_db();
        let store = Arc::new(SqliteStore::open(&path, DedupBy::Id).unwrap());
        let tasks: Vec<_> = (0..400_u128)
            .map(|n| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.insert(message(n, "m")).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let commits = store.commits();
        assert!(
            commits < 400,
            "{commits} commits for 400 inserts: nothing was grouped"
        );
        // The batch sizes are measured: one observation per commit, 400 inserts in all.
        let mut registry = Registry::default();
        store.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(&format!("store_commit_batch_size_count {commits}\n")),
            "{text}"
        );
        assert!(
            text.contains("store_commit_batch_size_sum 400.0\n"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clean_close_folds_the_write_ahead_log_back() {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path, DedupBy::Id).unwrap();
        store.insert(message(1, "a")).await.unwrap();
        store.check().await.unwrap();
        store.close().await;
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        assert!(!wal.exists(), "{} left behind", wal.display());
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_its_limit_and_every_probe() {
        let (sender, mut queue) = mpsc::unbounded_channel();
        let insert = |n: u128| {
            let (reply, _) = oneshot::channel();
            Job::Insert(Write {
                message: message(n, "queued"),
                reply,
            })
        };
        for n in 1..=(MAX_BATCH as u128 + 9) {
            sender.send(insert(n)).unwrap();
        }
        let (mut batch, mut probes) = (Vec::new(), Vec::new());
        let (probe, _) = oneshot::channel();
        gather(Job::Probe(probe), &mut queue, &mut batch, &mut probes);
        assert_eq!((batch.len(), probes.len()), (MAX_BATCH, 1));
        // The rest waits for the next batch, in order.
        batch.clear();
        let first = queue.try_recv().unwrap();
        gather(first, &mut queue, &mut batch, &mut probes);
        assert_eq!(batch.len(), 9);
        assert_eq!(batch[0].message.id, Uuid::from_u128(MAX_BATCH as u128 + 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_store_waits_for_its_writer_to_close_the_database() {
        // As when a caller drops it without `close`: the inserts already queued are still
        // committed, and the log folded back, before the drop returns.
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path, DedupBy::Id).unwrap();
        let queued = 2000_u128;
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        for n in 0..queued {
            // Polled once: queued for the writer, the answer not waited for.
            let mut insert = store.insert(message(n, "queued"));
            assert!(insert.as_mut().poll(&mut context).is_pending());
        }
        tokio::task::block_in_place(|| drop(store));
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        assert!(!wal.exists(), "{} left behind", wal.display());
        let reopened = SqliteStore::open(&path, DedupBy::Id).unwrap();
        assert_eq!(reopened.list().await.unwrap().len(), queued as usize);
        reopened.close().await;
    }

    #[tokio::test]
    async fn each_insert_awaited_alone_is_its_own_commit() {
        // Answered only once committed: one at a time, nothing waits to be grouped.
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path, DedupBy::Id).unwrap();
        for n in 1..=3 {
            store.insert(message(n, "alone")).await.unwrap();
            assert_eq!(store.commits(), n as u64);
        }
        store.close().await;
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_start_up_error() {
        let (_dir, path) = temp_db();
        std::fs::write(&path, vec![0x42_u8; 8192]).unwrap();
        let error = SqliteStore::open(&path, DedupBy::Id).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("cannot open the message database"), "{text}");
        assert!(text.contains("not a database"), "{text}");
    }

    #[test]
    fn a_path_that_cannot_be_written_as_a_file_is_a_start_up_error() {
        // A directory where the file should be: nothing can be created or written there.
        let (_dir, path) = temp_db();
        std::fs::create_dir_all(&path).unwrap();
        let error = SqliteStore::open(&path, DedupBy::Id).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("cannot open the message database"), "{text}");
        assert!(text.contains("unable to open"), "{text}");
    }

    #[test]
    fn a_database_in_a_missing_directory_is_a_start_up_error() {
        let error =
            SqliteStore::open("/nonexistent/dir/messages.sqlite3", DedupBy::Id).unwrap_err();
        assert!(format!("{error:#}").contains("unable to open"), "{error:#}");
    }
}
