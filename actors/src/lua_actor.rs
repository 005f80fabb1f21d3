//! [`LuaActor`]: the one persistent Lua state, on its own thread (a SyncArbiter of one), so
//! scripts and callbacks never run on an async thread.

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

/// The Lua actor.
pub struct LuaActor {
    engine: Option<LuaEngine>,
}

impl LuaActor {
    /// Starts the actor on its own thread, running the configured `LuaScripts` first.
    pub fn start(scripts: Vec<String>) -> Addr<LuaActor> {
        SyncArbiter::start(1, move || {
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
            LuaActor { engine }
        })
    }
}

impl Actor for LuaActor {
    type Context = SyncContext<Self>;
}

impl Handler<ExecuteScript> for LuaActor {
    type Result = Result<String, LuaError>;

    fn handle(&mut self, msg: ExecuteScript, _: &mut SyncContext<Self>) -> Self::Result {
        match &self.engine {
            Some(engine) => engine.execute(&msg.0),
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
