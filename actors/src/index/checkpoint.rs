//! The checkpointer: copies the WAL into the database on its own thread, so that the
//! writer's group commits go on meanwhile.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: every
//! thousand pages or so, one group commit then waited for the WAL fsync, a thousand page
//! writes and the database fsync (~20 ms here), and every ingest waiting for that commit
//! with it — two fifths of the wall time of a small-file ingest. The writer now only counts
//! the WAL's pages (SQLite's WAL hook) and wakes this thread past [`WAL_PAGES`]; it copies
//! them (PASSIVE checkpoints: they never block the writer nor the readers) with the same
//! fsyncs as before, in passes, each copying what was committed during the one before,
//! until what is left is short. That tail is copied by the writer itself, between two
//! commits: SQLite starts the WAL again from its beginning only at a commit that finds it
//! wholly copied, which a checkpoint running beside a stream of commits never sees (the
//! WAL then grows without end). The WAL is also checkpointed after [`IDLE`] without a
//! commit, and by the writer, inline, if it ever grows past [`WAL_PAGES_INLINE`].

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{ffi, Connection};

/// WAL size (pages) past which the checkpointer is woken (SQLite's default threshold).
pub const WAL_PAGES: i32 = 1000;
/// WAL size past which the writer checkpoints inline (the checkpointer cannot keep up).
pub const WAL_PAGES_INLINE: i32 = 50 * WAL_PAGES;
/// Quiet time after which the WAL is checkpointed whatever its size.
const IDLE: Duration = Duration::from_secs(1);

/// What the writer and the checkpointer share.
#[derive(Default)]
struct Shared {
    /// Pages in the WAL after the last commit (set by the WAL hook).
    wal_pages: AtomicI32,
    /// Commits so far.
    commits: AtomicU64,
    /// The checkpointer copied all but a (short) tail: the writer copies the rest.
    tail_ready: AtomicBool,
}

/// The writer's side: installed on its connection, told of every commit.
pub struct Checkpointer {
    shared: Arc<Shared>,
    kick: SyncSender<()>,
    /// WAL size at the last wake-up: the next one is [`WAL_PAGES`] later (the WAL keeps
    /// growing while checkpoints run beside the commits; it restarts from its beginning at
    /// the first commit after a complete one).
    kicked_at: std::cell::Cell<i32>,
}

extern "C" fn wal_hook(
    arg: *mut c_void,
    _db: *mut ffi::sqlite3,
    _name: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: `arg` is the `Shared` that `Checkpointer::install` passed, kept alive by the
    // checkpointer, which the writer holds as long as its connection.
    let shared = unsafe { &*(arg as *const Shared) };
    shared.wal_pages.store(pages, Ordering::Relaxed);
    ffi::SQLITE_OK
}

impl Checkpointer {
    /// Replaces SQLite's automatic checkpoint on `conn` (the writer's connection) with the
    /// checkpointer thread, which opens its own connection to `path`.
    pub fn install(conn: &Connection, path: PathBuf) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared::default());
        let (kick, rx) = sync_channel(1);
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("index-checkpoint".into())
            .spawn(move || run(path, theirs, rx))?;
        // SAFETY: the handle is the writer's open connection; the hook's argument outlives
        // it (see `wal_hook`). Installing a WAL hook turns SQLite's automatic checkpoint off.
        unsafe {
            ffi::sqlite3_wal_hook(
                conn.handle(),
                Some(wal_hook),
                Arc::as_ptr(&shared) as *mut c_void,
            );
        }
        Ok(Checkpointer {
            shared,
            kick,
            kicked_at: Default::default(),
        })
    }

    /// After a commit of the writer: copies the tail of the WAL the checkpointer left, wakes
    /// the checkpointer when the WAL is large, or checkpoints inline when it is far too large.
    pub fn committed(&self, conn: &Connection) {
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        let pages = self.shared.wal_pages.load(Ordering::Relaxed);
        if self.shared.tail_ready.swap(false, Ordering::Relaxed) || pages >= WAL_PAGES_INLINE {
            if let Err(e) = pass(conn) {
                tracing::warn!("index checkpoint: {e}");
            }
            self.kicked_at.set(0);
            return;
        }
        if pages < self.kicked_at.get() {
            self.kicked_at.set(0);
        }
        if pages - self.kicked_at.get() >= WAL_PAGES {
            self.kicked_at.set(pages);
            // Full: a checkpoint is already asked for.
            let _ = self.kick.try_send(());
        }
    }
}

/// Passes of the checkpointer before it leaves the tail to the writer.
const PASSES: usize = 8;
/// A tail short enough for the writer to copy (pages).
const TAIL: i64 = 64;

/// One PASSIVE checkpoint: copies the frames committed when it starts. Gives the WAL's size
/// (frames) it saw, or `None` if it could not run.
fn pass(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let (busy, log): (i64, i64) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok((busy == 0).then_some(log))
}

/// Passes until what was committed during the last one is short (or [`PASSES`] of them).
fn catch_up(conn: &Connection) -> rusqlite::Result<()> {
    let mut copied = 0;
    for _ in 0..PASSES {
        match pass(conn)? {
            Some(log) if log - copied >= TAIL => copied = log,
            _ => break,
        }
    }
    Ok(())
}

fn run(path: PathBuf, shared: Arc<Shared>, kicks: Receiver<()>) {
    let conn = match super::connect(&path, super::Role::Checkpointer) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("index checkpointer: cannot open the index: {e}");
            return;
        }
    };
    // This connection never writes, but would checkpoint on its own if it did.
    let _ = conn.execute_batch("PRAGMA wal_autocheckpoint = 0");
    let mut done_at = shared.commits.load(Ordering::Relaxed);
    loop {
        let kicked = match kicks.recv_timeout(IDLE) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let commits = shared.commits.load(Ordering::Relaxed);
        if !kicked && commits == done_at {
            continue;
        }
        let started = std::time::Instant::now();
        // Woken by the writer: commits go on, the writer copies the tail. Idle: one pass
        // copies everything.
        let outcome = if kicked {
            catch_up(&conn)
        } else {
            pass(&conn).map(|_| ())
        };
        match outcome {
            Ok(()) => {
                done_at = commits;
                shared.tail_ready.store(kicked, Ordering::Relaxed);
                tracing::debug!("index checkpoint in {:?}", started.elapsed());
            }
            Err(e) => tracing::warn!("index checkpoint: {e}"),
        }
    }
    tracing::debug!("index checkpointer stopped");
}
