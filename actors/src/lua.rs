//! Embedded Lua scripting engine mimicking Orthanc's `LuaContext` / `LuaScripting`.
//!
//! One persistent Lua 5.4 state: globals and callbacks defined by one script
//! survive for the following scripts and callback invocations. The engine is
//! `!Send`: create it on the (single) thread that will use it, e.g. inside the
//! factory closure of an actix `SyncArbiter::start(1, ...)`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{Function, HookTriggers, Lua, MultiValue, Table, Value, VmState};
use serde_json::{Map, Number, Value as Json};

/// Orthanc error code used for every Lua failure (`ErrorCode_CannotExecuteLua`).
pub const ORTHANC_ERROR_CODE: u16 = 2031;
/// HTTP status Orthanc answers for `ErrorCode_CannotExecuteLua` (default mapping).
pub const ORTHANC_HTTP_STATUS: u16 = 500;
/// Orthanc's description of that error code (the "Message" of the error body).
pub const ORTHANC_ERROR_MESSAGE: &str = "Cannot execute a Lua command";

const MEMORY_LIMIT: usize = 256 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DEPTH: usize = 128;

/// Names of the global Lua callbacks Orthanc invokes, with the arguments it passes.
/// "origin" is `{"RequestOrigin": "DicomProtocol"|"RestApi"|"Lua"|"Plugins",
/// ...}` plus `RemoteIp`/`RemoteAet`/`CalledAet` (DICOM) or `RemoteIp`/`Username` (REST).
pub mod callbacks {
    /// `(instanceId: string, tags: simplified-tags table, metadata: table, origin: table)`; result ignored.
    pub const ON_STORED_INSTANCE: &str = "OnStoredInstance";
    /// `(dicom: simplified-tags table, origin: table, info: {HasPixelData: bool, TransferSyntaxUID?: string})`
    /// → must return a boolean (false = discard the instance).
    pub const RECEIVED_INSTANCE_FILTER: &str = "ReceivedInstanceFilter";
    /// Same arguments as `ReceivedInstanceFilter`; returns an integer DIMSE status (0 = accept).
    pub const RECEIVED_CSTORE_INSTANCE_FILTER: &str = "ReceivedCStoreInstanceFilter";
    /// `(query: {"gggg,eeee": string}, origin: table)` → returns the modified query table.
    pub const INCOMING_FIND_REQUEST_FILTER: &str = "IncomingFindRequestFilter";
    /// `(query: {"gggg,eeee": string}, origin: table)` → returns the modified worklist query.
    pub const INCOMING_WORKLIST_REQUEST_FILTER: &str = "IncomingWorklistRequestFilter";
    /// `(query: {"gggg,eeee": string}, modality: string)` → returns the modified query table.
    pub const OUTGOING_FIND_REQUEST_FILTER: &str = "OutgoingFindRequestFilter";
    /// `(method: "GET"|"PUT"|"POST"|"DELETE", uri, ip, username, headers: table)` → boolean.
    pub const INCOMING_HTTP_REQUEST_FILTER: &str = "IncomingHttpRequestFilter";
    /// `(resourceId: string, tags: table, metadata: table)`; result ignored (job helpers may be used).
    pub const ON_STABLE_PATIENT: &str = "OnStablePatient";
    /// Same as `OnStablePatient` (tags exclude patient-level ones).
    pub const ON_STABLE_STUDY: &str = "OnStableStudy";
    /// Same as `OnStablePatient`.
    pub const ON_STABLE_SERIES: &str = "OnStableSeries";
    /// `(resourceId: string)` for each of the `OnDeleted*` / `OnUpdated*` callbacks.
    pub const ON_DELETED_PATIENT: &str = "OnDeletedPatient";
    pub const ON_DELETED_STUDY: &str = "OnDeletedStudy";
    pub const ON_DELETED_SERIES: &str = "OnDeletedSeries";
    pub const ON_DELETED_INSTANCE: &str = "OnDeletedInstance";
    pub const ON_UPDATED_PATIENT: &str = "OnUpdatedPatient";
    pub const ON_UPDATED_STUDY: &str = "OnUpdatedStudy";
    pub const ON_UPDATED_SERIES: &str = "OnUpdatedSeries";
    pub const ON_UPDATED_INSTANCE: &str = "OnUpdatedInstance";
    /// `(jobId: string)` for the three job callbacks.
    pub const ON_JOB_SUBMITTED: &str = "OnJobSubmitted";
    pub const ON_JOB_SUCCESS: &str = "OnJobSuccess";
    pub const ON_JOB_FAILURE: &str = "OnJobFailure";
    /// `()` every `LuaHeartBeatPeriod` seconds.
    pub const ON_HEART_BEAT: &str = "OnHeartBeat";
    /// Legacy (Orthanc < 1.9, still installed by the integration tests): `(aet, ip)` → boolean.
    pub const IS_DEFLATED_TRANSFER_SYNTAX_ACCEPTED: &str = "IsDeflatedTransferSyntaxAccepted";
    pub const IS_JPEG_TRANSFER_SYNTAX_ACCEPTED: &str = "IsJpegTransferSyntaxAccepted";
    pub const IS_JPEG2000_TRANSFER_SYNTAX_ACCEPTED: &str = "IsJpeg2000TransferSyntaxAccepted";
    pub const IS_JPEG_LOSSLESS_TRANSFER_SYNTAX_ACCEPTED: &str =
        "IsJpegLosslessTransferSyntaxAccepted";
    pub const IS_JPIP_TRANSFER_SYNTAX_ACCEPTED: &str = "IsJpipTransferSyntaxAccepted";
    pub const IS_MPEG2_TRANSFER_SYNTAX_ACCEPTED: &str = "IsMpeg2TransferSyntaxAccepted";
    pub const IS_RLE_TRANSFER_SYNTAX_ACCEPTED: &str = "IsRleTransferSyntaxAccepted";
    pub const IS_UNKNOWN_SOP_CLASS_ACCEPTED: &str = "IsUnknownSopClassAccepted";
}

/// A Lua failure. Orthanc reports all of them as error 2031 / HTTP 500, with
/// the Lua message (e.g. `[string "line"]:1: ...`) as "Details".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LuaError {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Runtime(String),
    #[error("Lua memory limit exceeded: {0}")]
    Memory(String),
    #[error("Lua script aborted after {0} ms (timeout)")]
    Timeout(u128),
    #[error("Lua function not found: {0}")]
    NoSuchFunction(String),
}

impl LuaError {
    /// Orthanc error code (always `CannotExecuteLua` = 2031).
    pub fn orthanc_code(&self) -> u16 {
        ORTHANC_ERROR_CODE
    }
    /// HTTP status Orthanc would answer (always 500).
    pub fn http_status(&self) -> u16 {
        ORTHANC_HTTP_STATUS
    }
}

fn innermost(e: &mlua::Error) -> &mlua::Error {
    match e {
        mlua::Error::CallbackError { cause, .. } => innermost(cause),
        mlua::Error::WithContext { cause, .. } => innermost(cause),
        other => other,
    }
}

fn convert_error(e: mlua::Error, timed_out: Option<Duration>) -> LuaError {
    if let Some(limit) = timed_out {
        return LuaError::Timeout(limit.as_millis());
    }
    match innermost(&e) {
        mlua::Error::SyntaxError { message, .. } => LuaError::Syntax(message.clone()),
        // mlua appends a traceback that Orthanc does not report.
        mlua::Error::RuntimeError(m) => {
            let end = m.find("\nstack traceback:").unwrap_or(m.len());
            LuaError::Runtime(m[..end].to_string())
        }
        mlua::Error::MemoryError(m) => LuaError::Memory(m.clone()),
        other => LuaError::Runtime(other.to_string()),
    }
}

/// Pure-Lua helpers that Orthanc installs at startup (behaviour of its Toolbox.lua).
const PRELUDE: &str = r#"
os.exit = function() error("os.exit() is disabled in this server") end

function PrintRecursive(value, budget, prefix)
  budget = budget or 100
  prefix = prefix or ""
  if budget < 1 then
    print("ERROR: Item limit reached.")
    return budget - 1
  end
  local kind = type(value)
  if kind ~= "table" then
    print(prefix, kind, value)
    return budget - 1
  end
  print(prefix, kind)
  for key, item in pairs(value) do
    budget = PrintRecursive(item, budget, prefix .. "\t[" .. tostring(key) .. "]")
    if budget < 0 then break end
  end
  return budget
end

function _InitializeJob() _job = {} end
function _AccessJob() return _job end
local function push(op) _job = _job or {}; _job[#_job + 1] = op end

function SendToModality(resourceId, modality, localAet)
  if resourceId == nil then error("Cannot send a nonexistent resource") end
  push({ Operation = "store-scu", Resource = resourceId, Modality = modality, LocalAet = localAet })
  return resourceId
end
function SendToPeer(resourceId, peer)
  if resourceId == nil then error("Cannot send a nonexistent resource") end
  push({ Operation = "store-peer", Resource = resourceId, Peer = peer })
  return resourceId
end
function Delete(resourceId)
  if resourceId == nil then error("Cannot delete a nonexistent resource") end
  push({ Operation = "delete", Resource = resourceId })
  return nil
end
function ModifyResource(resourceId, replacements, removals, removePrivateTags)
  if resourceId == nil then error("Cannot modify a nonexistent resource") end
  if resourceId == "" then error("Cannot modify twice an resource") end
  push({ Operation = "modify", Resource = resourceId, Replace = replacements,
         Remove = removals, RemovePrivateTags = removePrivateTags })
  return ""
end
function ModifyInstance(resourceId, replacements, removals, removePrivateTags)
  return ModifyResource(resourceId, replacements, removals, removePrivateTags)
end
function CallSystem(resourceId, command, args)
  if resourceId == nil then error("Cannot execute a system call on a nonexistent resource") end
  if command == nil then error("No command was specified for system call") end
  push({ Operation = "call-system", Resource = resourceId, Command = command, Arguments = args })
  return resourceId
end
"#;

/// One persistent Lua state with Orthanc's built-in helpers.
pub struct LuaEngine {
    lua: Lua,
    output: Rc<RefCell<String>>,
    deadline: Rc<Cell<Option<Instant>>>,
    timed_out: Rc<Cell<bool>>,
    timeout: Cell<Duration>,
}

impl LuaEngine {
    pub fn new() -> Result<Self, LuaError> {
        let lua = Lua::new();
        let output = Rc::new(RefCell::new(String::new()));
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let timed_out = Rc::new(Cell::new(false));
        let err = |e| convert_error(e, None);
        lua.set_memory_limit(MEMORY_LIMIT).map_err(err)?;

        let (d, t) = (deadline.clone(), timed_out.clone());
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(10_000),
            move |_, _| match d.get() {
                Some(limit) if Instant::now() > limit => {
                    t.set(true);
                    Err(mlua::Error::RuntimeError("Lua script timed out".into()))
                }
                _ => Ok(VmState::Continue),
            },
        )
        .map_err(err)?;

        let globals = lua.globals();
        let out = output.clone();
        let print = lua
            .create_function(move |lua, args: MultiValue| {
                let tostring: Function = lua.globals().get("tostring")?;
                let mut line = String::new();
                for arg in args {
                    let s = match tostring.call::<Value>(arg)? {
                        Value::String(s) => s.to_string_lossy(),
                        _ => "<No conversion to string>".to_string(),
                    };
                    // Orthanc only inserts the separator once something was written.
                    if !line.is_empty() {
                        line.push_str(", ");
                    }
                    line.push_str(&s);
                }
                let mut out = out.borrow_mut();
                out.push_str(&line);
                out.push('\n');
                Ok(())
            })
            .map_err(err)?;
        globals.set("print", print).map_err(err)?;

        let parse = lua
            .create_function(|lua, args: MultiValue| {
                if args.len() != 1 {
                    return Ok(Value::Nil);
                }
                let text = match &args[0] {
                    v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
                        lua.coerce_string(v.clone())?
                    }
                    _ => None,
                };
                match text.and_then(|s| serde_json::from_slice::<Json>(&s.as_bytes()).ok()) {
                    Some(json) => json_to_lua(lua, &json),
                    None => Ok(Value::Nil),
                }
            })
            .map_err(err)?;
        globals.set("ParseJson", parse).map_err(err)?;

        let dump = lua
            .create_function(|lua, args: MultiValue| {
                let keep_strings = match (args.len(), args.get(1)) {
                    (1, _) => false,
                    (2, Some(Value::Boolean(b))) => *b,
                    _ => return Ok(Value::Nil),
                };
                let json = lua_to_json(lua, &args[0], keep_strings, 0)?;
                Ok(Value::String(lua.create_string(json.to_string())?))
            })
            .map_err(err)?;
        globals.set("DumpJson", dump).map_err(err)?;

        let engine = LuaEngine {
            lua,
            output,
            deadline,
            timed_out,
            timeout: Cell::new(TIMEOUT),
        };
        engine.execute(PRELUDE)?;
        Ok(engine)
    }

    fn guarded<T>(&self, f: impl FnOnce() -> mlua::Result<T>) -> Result<T, LuaError> {
        self.timed_out.set(false);
        self.deadline.set(Some(Instant::now() + self.timeout.get()));
        let result = f();
        self.deadline.set(None);
        let timed_out = self.timed_out.get().then(|| self.timeout.get());
        result.map_err(|e| convert_error(e, timed_out))
    }

    /// Changes the wall-clock limit of one `execute`/`call` (default 10 s).
    /// Note: a script that wraps its busy loop in `pcall` can still swallow the abort.
    pub fn set_timeout(&self, limit: Duration) {
        self.timeout.set(limit);
    }

    /// Runs a script as Orthanc's `POST /tools/execute-script` does and
    /// returns what it printed (each `print` = one line ending with "\n").
    pub fn execute(&self, script: &str) -> Result<String, LuaError> {
        self.output.borrow_mut().clear();
        let result = self.guarded(|| self.lua.load(script).set_name("line").exec());
        let printed = std::mem::take(&mut *self.output.borrow_mut());
        result.map(|_| printed)
    }

    /// True if the global `name` is a function.
    pub fn has_function(&self, name: &str) -> bool {
        matches!(
            self.lua.globals().get::<Value>(name),
            Ok(Value::Function(_))
        )
    }

    /// Calls a global function with JSON arguments; returns its first result as
    /// JSON (`nil` → Null, table with keys 1..n or empty → array, else object).
    /// Whatever the function prints is discarded (Orthanc only logs it).
    pub fn call(&self, name: &str, args: &[Json]) -> Result<Json, LuaError> {
        let func = match self.lua.globals().get::<Value>(name) {
            Ok(Value::Function(f)) => f,
            _ => return Err(LuaError::NoSuchFunction(name.to_string())),
        };
        let result = self.guarded(|| {
            let args = args
                .iter()
                .map(|a| json_to_lua(&self.lua, a))
                .collect::<mlua::Result<MultiValue>>()?;
            let ret: MultiValue = func.call(args)?;
            lua_to_json(&self.lua, ret.front().unwrap_or(&Value::Nil), false, 0)
        });
        self.output.borrow_mut().clear();
        result
    }

    /// Registers a global Lua function whose arguments are converted to JSON
    /// and whose result is converted back (extension point for RestApiGet, ...).
    /// Returning `Err(msg)` raises a Lua error with that message.
    pub fn register_function(
        &self,
        name: &str,
        f: impl Fn(&[Json]) -> Result<Json, String> + 'static,
    ) -> Result<(), LuaError> {
        let func = self
            .lua
            .create_function(move |lua, args: MultiValue| {
                let args = args
                    .iter()
                    .map(|v| lua_to_json(lua, v, false, 0))
                    .collect::<mlua::Result<Vec<Json>>>()?;
                match f(&args) {
                    Ok(json) => json_to_lua(lua, &json),
                    Err(msg) => Err(mlua::Error::RuntimeError(msg)),
                }
            })
            .and_then(|func| self.lua.globals().set(name, func));
        func.map_err(|e| convert_error(e, None))
    }
}

/// JSON → Lua as Orthanc's `PushJson` (null → nil, arrays → 1-based tables).
fn json_to_lua(lua: &Lua, json: &Json) -> mlua::Result<Value> {
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, json_to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        Json::Object(map) => {
            let table = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                table.raw_set(k.as_str(), json_to_lua(lua, v)?)?;
            }
            Value::Table(table)
        }
    })
}

fn number_to_json(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Json::from(f as i64)
    } else {
        Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
    }
}

fn key_to_string(lua: &Lua, key: &Value) -> mlua::Result<String> {
    Ok(match key {
        Value::Boolean(b) => b.to_string(),
        v => match lua.coerce_string(v.clone())? {
            Some(s) => s.to_string_lossy(),
            None => format!("{v:?}"),
        },
    })
}

/// Lua → JSON as Orthanc's `GetJson`; with `keep_strings`, numbers become strings.
fn lua_to_json(lua: &Lua, value: &Value, keep_strings: bool, depth: usize) -> mlua::Result<Json> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::RuntimeError(
            "Lua table too deeply nested (cycle?) for JSON conversion".into(),
        ));
    }
    Ok(match value {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) if !keep_strings => Json::from(*i),
        Value::Number(f) if !keep_strings => number_to_json(*f),
        Value::Integer(_) | Value::Number(_) => match lua.coerce_string(value.clone())? {
            Some(s) => Json::String(s.to_string_lossy()),
            None => Json::Null,
        },
        Value::String(s) => Json::String(s.to_string_lossy()),
        Value::Table(t) => table_to_json(lua, t, keep_strings, depth)?,
        _ => Json::Null,
    })
}

fn table_to_json(lua: &Lua, t: &Table, keep_strings: bool, depth: usize) -> mlua::Result<Json> {
    let mut map = Map::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        map.insert(
            key_to_string(lua, &k)?,
            lua_to_json(lua, &v, keep_strings, depth + 1)?,
        );
    }
    let n = map.len();
    if (1..=n).all(|i| map.contains_key(&i.to_string())) {
        Ok(Json::Array(
            (1..=n)
                .map(|i| map.remove(&i.to_string()).unwrap_or(Json::Null))
                .collect(),
        ))
    } else {
        // serde_json's map keeps its keys sorted, as Orthanc's JSON library writes them.
        Ok(Json::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn print_format() {
        let e = LuaEngine::new().unwrap();
        assert_eq!(e.execute("print(42)").unwrap(), "42\n");
        assert_eq!(
            e.execute("print(1, 'a', nil, true)").unwrap(),
            "1, a, nil, true\n"
        );
        assert_eq!(e.execute("print()").unwrap(), "\n");
        assert_eq!(e.execute("print('', 'x', '', 'y')").unwrap(), "x, , y\n");
        assert_eq!(e.execute("print(1.5) print('b')").unwrap(), "1.5\nb\n");
        assert_eq!(e.execute("x = 1").unwrap(), "");
        assert_eq!(
            e.execute("print(type(PrintRecursive))").unwrap(),
            "function\n"
        );
        assert_eq!(e.execute("print(type(HelloWorld))").unwrap(), "nil\n");
        assert_eq!(
            e.execute("print(type(_InitializeJob))").unwrap(),
            "function\n"
        );
    }

    #[test]
    fn print_recursive() {
        let e = LuaEngine::new().unwrap();
        assert_eq!(e.execute("PrintRecursive(42)").unwrap(), "number, 42\n");
        assert_eq!(
            e.execute("PrintRecursive({a = {b = 'x'}})").unwrap(),
            "table\n\t[a], table\n\t[a]\t[b], string, x\n"
        );
        assert_eq!(
            e.execute("PrintRecursive({1, 2}, 1)").unwrap(),
            "table\n\t[1], number, 1\nERROR: Item limit reached.\n"
        );
    }

    #[test]
    fn json_helpers() {
        let e = LuaEngine::new().unwrap();
        let out = e
            .execute("print(DumpJson({b = 1, a = {1, 2.5, 'x'}, c = {}}))")
            .unwrap();
        assert_eq!(out, "{\"a\":[1,2.5,\"x\"],\"b\":1,\"c\":[]}\n");
        assert_eq!(
            e.execute("print(DumpJson({a = 1}, true))").unwrap(),
            "{\"a\":\"1\"}\n"
        );
        assert_eq!(e.execute("print(DumpJson(1, 2))").unwrap(), "nil\n");
        let out = e
            .execute("local t = ParseJson('{\"k\":[10,20]}') print(t.k[2])")
            .unwrap();
        assert_eq!(out, "20\n");
        assert_eq!(e.execute("print(ParseJson('{bad'))").unwrap(), "nil\n");
    }

    #[test]
    fn errors() {
        let e = LuaEngine::new().unwrap();
        let err = e.execute("print(").unwrap_err();
        assert!(matches!(err, LuaError::Syntax(_)), "{err:?}");
        assert!(err.to_string().starts_with("[string \"line\"]:1:"), "{err}");
        assert_eq!((err.orthanc_code(), err.http_status()), (2031, 500));
        let err = e.execute("print('lost') error('boom')").unwrap_err();
        assert_eq!(err, LuaError::Runtime("[string \"line\"]:1: boom".into()));
        assert!(matches!(
            e.call("Nope", &[]),
            Err(LuaError::NoSuchFunction(_))
        ));
        // State survives errors.
        assert_eq!(e.execute("print(1)").unwrap(), "1\n");
    }

    #[test]
    fn test_suite_scripts_and_callbacks() {
        let e = LuaEngine::new().unwrap();
        assert!(!e.has_function(callbacks::IS_DEFLATED_TRANSFER_SYNTAX_ACCEPTED));
        // Same shape as the suite's Database/Lua/TransferSyntaxEnable.lua.
        let mut script = String::new();
        for n in [
            "Deflated",
            "Jpeg",
            "Jpeg2000",
            "JpegLossless",
            "Jpip",
            "Mpeg2",
            "Rle",
        ] {
            script +=
                &format!("function Is{n}TransferSyntaxAccepted(aet, ip)\n   return true\nend\n\n");
        }
        script += "function IsUnknownSopClassAccepted(aet, ip)\n   return true\nend\n";
        script += "-- print('All special transfer syntaxes are now accepted')\n";
        assert_eq!(e.execute(&script).unwrap(), "");
        e.execute("function OnStoredInstance(instanceId, tags, metadata, origin) end")
            .unwrap();
        assert!(e.has_function(callbacks::ON_STORED_INSTANCE));
        let args = [json!("ORTHANC"), json!("127.0.0.1")];
        assert_eq!(
            e.call("IsDeflatedTransferSyntaxAccepted", &args).unwrap(),
            json!(true)
        );
        assert_eq!(
            e.call("IsUnknownSopClassAccepted", &args).unwrap(),
            json!(true)
        );
        let stored = [
            json!("id"),
            json!({"PatientID": "p"}),
            json!({}),
            json!({"RequestOrigin": "RestApi"}),
        ];
        assert_eq!(e.call("OnStoredInstance", &stored).unwrap(), Json::Null);

        e.execute(
            "function ReceivedInstanceFilter(dicom, origin, info)
               return dicom.Modality ~= 'CT' and origin.RemoteAet == 'A' and info.HasPixelData
             end
             function IncomingFindRequestFilter(q, origin)
               q['0008,0060'] = 'MR'; q.list = {1, 2, {x = 3}}; q.none = nil; return q
             end",
        )
        .unwrap();
        let origin = json!({"RequestOrigin": "DicomProtocol", "RemoteAet": "A"});
        let info = json!({"HasPixelData": true});
        let r = e.call(
            "ReceivedInstanceFilter",
            &[json!({"Modality": "MR"}), origin.clone(), info.clone()],
        );
        assert_eq!(r.unwrap(), json!(true));
        let r = e.call(
            "ReceivedInstanceFilter",
            &[json!({"Modality": "CT"}), origin.clone(), info],
        );
        assert_eq!(r.unwrap(), json!(false));
        let r = e.call(
            "IncomingFindRequestFilter",
            &[json!({"0010,0010": "A*", "none": null}), origin],
        );
        assert_eq!(
            r.unwrap(),
            json!({"0010,0010": "A*", "0008,0060": "MR", "list": [1, 2, {"x": 3}]})
        );
    }

    #[test]
    fn persistent_state_and_jobs() {
        let e = LuaEngine::new().unwrap();
        e.execute("aet = 'HELLO'").unwrap();
        assert_eq!(e.execute("print(aet)").unwrap(), "HELLO\n");
        e.call("_InitializeJob", &[]).unwrap();
        e.execute("Delete(SendToModality('abc', 'sample', aet))")
            .unwrap();
        let job = e.call("_AccessJob", &[]).unwrap();
        assert_eq!(
            job[0],
            json!({"Operation": "store-scu", "Resource": "abc", "Modality": "sample", "LocalAet": "HELLO"})
        );
        assert_eq!(job[1], json!({"Operation": "delete", "Resource": "abc"}));
    }

    #[test]
    fn registered_functions() {
        let e = LuaEngine::new().unwrap();
        e.register_function("RestApiGet", |args| match args.first() {
            Some(Json::String(uri)) if uri == "/system" => Ok(json!({"Version": "1.12"})),
            _ => Err("bad uri".into()),
        })
        .unwrap();
        assert_eq!(
            e.execute("print(RestApiGet('/system').Version)").unwrap(),
            "1.12\n"
        );
        let err = e.execute("RestApiGet('/x')").unwrap_err();
        assert!(err.to_string().contains("bad uri"), "{err}");
    }

    #[test]
    fn guards() {
        let e = LuaEngine::new().unwrap();
        let err = e
            .execute("local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000) .. i end")
            .unwrap_err();
        assert!(matches!(err, LuaError::Memory(_)), "{err:?}");
        e.set_timeout(Duration::from_millis(300));
        let start = Instant::now();
        let err = e.execute("while true do end").unwrap_err();
        assert_eq!(err, LuaError::Timeout(300));
        e.execute("function Spin() while true do end end").unwrap();
        assert_eq!(e.call("Spin", &[]).unwrap_err(), LuaError::Timeout(300));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(e.execute("os.exit(1)").is_err());
        assert_eq!(e.execute("print('alive')").unwrap(), "alive\n");
    }
}
