//! The DICOM server (SCP) on `DicomPort`: associations run on their own bounded threads
//! (`dimse::serve`), and every received instance goes through the same [`IngestActor`] as a
//! REST upload, with the DICOM origin (calling AET, called AET, IP) in its metadata.

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::Addr;

use crate::dimse::commitment::CommitmentHandler;
use crate::dimse::AccessHandler;
use crate::dimse::{
    self, FindHandler, GetHandler, Handlers, MoveHandler, ScpConfig, StoreContext, StoreHandler,
};
use crate::index::{IndexError, StoreStatus};
use crate::ingest::{IngestActor, IngestError, Origin, StoreInstance, StoredInstance};

/// DIMSE statuses of a C-STORE failure (PS3.4 B.2.3).
const OUT_OF_RESOURCES: u16 = 0xA700;
const CANNOT_UNDERSTAND: u16 = 0xC000;

/// Hands received instances to the ingestion actor and waits for the commit.
struct IngestHandler {
    ingest: Addr<IngestActor>,
}

impl StoreHandler for IngestHandler {
    fn store(&self, file: Vec<u8>, ctx: &StoreContext) -> Result<(), u16> {
        store_received(&self.ingest, file, ctx).map(|_| ())
    }
}

/// Stores an instance received over DICOM (C-STORE, or brought by a C-GET of ours) through
/// the ingestion, waiting for its commit (blocking); its ids, or the C-STORE failure status.
pub fn store_received(
    ingest: &Addr<IngestActor>,
    file: Vec<u8>,
    ctx: &StoreContext,
) -> Result<StoredInstance, u16> {
    let origin = Origin {
        kind: "DicomProtocol",
        remote_ip: Some(ctx.remote_ip.clone()),
        remote_aet: Some(ctx.calling_aet.clone()),
        called_aet: Some(ctx.called_aet.clone()),
        http_username: None,
    };
    let sent = futures_executor::block_on(ingest.send(StoreInstance {
        data: Arc::new(file),
        origin,
        refresh_parents: false,
    }));
    match sent {
        Ok(Ok(stored)) if stored.status != StoreStatus::FilteredOut => Ok(stored),
        Ok(Ok(_)) => Err(OUT_OF_RESOURCES),
        Ok(Err(IngestError::BadFileFormat(e))) => {
            tracing::warn!("C-STORE of a bad file from {}: {e}", ctx.calling_aet);
            Err(CANNOT_UNDERSTAND)
        }
        Ok(Err(IngestError::Index(IndexError::FullStorage))) => Err(OUT_OF_RESOURCES),
        Ok(Err(e)) => {
            tracing::error!("C-STORE from {} failed: {e}", ctx.calling_aet);
            Err(OUT_OF_RESOURCES)
        }
        Err(e) => {
            tracing::error!("the ingestion is not available: {e}");
            Err(OUT_OF_RESOURCES)
        }
    }
}

/// The DICOM services the server offers besides C-ECHO and C-STORE, and its access rules.
#[derive(Default)]
pub struct Services {
    pub find: Option<Arc<dyn FindHandler>>,
    pub moves: Option<Arc<dyn MoveHandler>>,
    pub gets: Option<Arc<dyn GetHandler>>,
    pub commitment: Option<Arc<dyn CommitmentHandler>>,
    pub access: Option<Arc<dyn AccessHandler>>,
}

/// A running DICOM server; stops accepting when dropped.
pub struct DicomServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DicomServer {
    /// Binds `port` (0 = any free port) and serves on a dedicated thread: C-STORE goes to the
    /// ingestion, the other services to the handlers given.
    pub fn start(
        port: u16,
        mut config: ScpConfig,
        ingest: Addr<IngestActor>,
        services: Services,
    ) -> std::io::Result<DicomServer> {
        config.commitment = services.commitment.is_some();
        config.find = services.find.is_some();
        config.moves = services.moves.is_some();
        config.gets = services.gets.is_some();
        let listener = TcpListener::bind(("0.0.0.0", port))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Handlers {
            store: Arc::new(IngestHandler { ingest }),
            find: services.find,
            moves: services.moves,
            gets: services.gets,
            commitment: services.commitment,
            access: services.access,
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dicom-scp".into())
            .spawn(move || dimse::serve(listener, Arc::new(config), handler, flag))?;
        Ok(DicomServer {
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DicomServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop (it waits for a connection) so that it sees the flag at once,
        // then wait for it so that the port is free again.
        let wake = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let _ = std::net::TcpStream::connect_timeout(&wake, std::time::Duration::from_millis(100));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
