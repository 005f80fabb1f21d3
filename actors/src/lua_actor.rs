//! [`LuaActor`]: the one persistent Lua state, on its own thread (a SyncArbiter of one), so
//! scripts and callbacks never run on an async thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

use crate::lua::{LuaEngine, LuaError};

/// Runs a script (`POST /tools/execute-script`) and answers what it printed.
#[derive(Message)]
#[rtype(result = "Result<String, LuaError>")]
pub struct ExecuteScript(pub String);

/// Calls a global Lua function if the scripts defined it; `None` when it is not defined.
#[derive(Message)]
#[rtype(result = "Result<Option<Value>, LuaError>")]
pub struct CallCallback {
    pub name: &'static str,
    pub args: Vec<Value>,
}

/// Which callbacks the scripts define, readable without a trip to the Lua thread.
#[derive(Debug, Default)]
pub struct LuaHooks {
    /// `ReceivedInstanceFilter` is defined.
    pub filter: AtomicBool,
    /// `OnStoredInstance` is defined.
    pub on_stored: AtomicBool,
}

impl LuaHooks {
    fn refresh(&self, engine: &LuaEngine) {
        self.filter.store(
            engine.has_function("ReceivedInstanceFilter"),
            Ordering::Relaxed,
        );
        self.on_stored
            .store(engine.has_function("OnStoredInstance"), Ordering::Relaxed);
    }
}

/// The Lua actor and what the ingestion needs to call it.
#[derive(Clone)]
pub struct LuaHandle {
    pub addr: Addr<LuaActor>,
    pub hooks: Arc<LuaHooks>,
}

/// The Lua actor.
pub struct LuaActor {
    engine: Option<LuaEngine>,
    hooks: Arc<LuaHooks>,
}

impl LuaActor {
    /// Starts the actor on its own thread, running the configured `LuaScripts` first.
    pub fn start(scripts: Vec<String>) -> LuaHandle {
        let hooks = Arc::new(LuaHooks::default());
        let shared = hooks.clone();
        let addr = SyncArbiter::start(1, move || {
            let engine = LuaEngine::new()
                .map_err(|e| tracing::error!("cannot start Lua: {e}"))
                .ok();
            if let Some(engine) = &engine {
                for script in &scripts {
                    if let Err(e) = engine.execute(script) {
                        tracing::error!("error in a Lua script of the configuration: {e}");
                    }
                }
            }
            if let Some(engine) = &engine {
                shared.refresh(engine);
            }
            LuaActor {
                engine,
                hooks: shared.clone(),
            }
        });
        LuaHandle { addr, hooks }
    }
}

impl Actor for LuaActor {
    type Context = SyncContext<Self>;
}

impl Handler<ExecuteScript> for LuaActor {
    type Result = Result<String, LuaError>;

    fn handle(&mut self, msg: ExecuteScript, _: &mut SyncContext<Self>) -> Self::Result {
        match &self.engine {
            Some(engine) => {
                let out = engine.execute(&msg.0);
                self.hooks.refresh(engine);
                out
            }
            None => Err(LuaError::Runtime("Lua is not available".into())),
        }
    }
}

impl Handler<CallCallback> for LuaActor {
    type Result = Result<Option<Value>, LuaError>;

    fn handle(&mut self, msg: CallCallback, _: &mut SyncContext<Self>) -> Self::Result {
        match &self.engine {
            Some(engine) if engine.has_function(msg.name) => {
                engine.call(msg.name, &msg.args).map(Some)
            }
            _ => Ok(None),
        }
    }
}

impl LuaHandle {
    /// Whether any callback needs the tags of incoming instances.
    pub fn wants_tags(&self) -> bool {
        self.hooks.filter.load(Ordering::Relaxed) || self.hooks.on_stored.load(Ordering::Relaxed)
    }

    /// Asks `ReceivedInstanceFilter(tags, origin, info)`; false means the instance is dropped.
    pub async fn accepts(&self, tags: Value, origin: &str, info: Value) -> bool {
        if !self.hooks.filter.load(Ordering::Relaxed) {
            return true;
        }
        let call = CallCallback {
            name: "ReceivedInstanceFilter",
            args: vec![tags, Value::from(origin), info],
        };
        match self.addr.send(call).await {
            Ok(Ok(Some(Value::Bool(keep)))) => keep,
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!("error in ReceivedInstanceFilter: {e}");
                true
            }
            Err(e) => {
                tracing::warn!("cannot call ReceivedInstanceFilter: {e}");
                true
            }
        }
    }

    /// Fires `OnStoredInstance(id, tags, metadata, origin)`; dropped with a warning when the
    /// Lua mailbox is full (the callback never delays an ingest).
    pub fn instance_stored(&self, id: &str, tags: Value, metadata: Value, origin: Value) {
        if !self.hooks.on_stored.load(Ordering::Relaxed) {
            return;
        }
        let call = CallCallback {
            name: "OnStoredInstance",
            args: vec![Value::from(id), tags, metadata, origin],
        };
        if let Err(e) = self.addr.try_send(call) {
            tracing::warn!("OnStoredInstance not called for {id}: {e}");
        }
    }
}
