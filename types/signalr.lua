---@meta
-- LuaLS (lua-language-server) annotations for lua-signalr: point
-- `workspace.library` at this folder (the rock keeps it in its doc dir) and
-- editors complete and check the API.  This file is never loaded.

---@class signalr.Details
---@field code string  "EINVAL", "ESTATUS", ... (see the README's error table)
---@field status? integer  the HTTP status of an ESTATUS failure
---@field service_code? string  x-ms-error-code, or ErrorDetail.code
---@field fetched? integer  group_connections: members read before the failure
---@field sent? boolean  whether a failed request may have reached the service
---@field endpoints? table<string, true|boolean|signalr.Details>  several endpoints: each one's answer
---@field delivered? integer  EPARTIAL: endpoints that took the call
---@field failed? integer  EPARTIAL: endpoints that did not (failed or offline)

---@class signalr.EndpointEntry: signalr.Options
---@field connection_string string
---@field name? string  unique; default the endpoint's URL
---@field type? "primary"|"secondary"

---@class signalr.Endpoint
---@field name string
---@field type "primary"|"secondary"
---@field online boolean
---@field endpoint string
---@field client_endpoint? string
---@field server_endpoint? string
---@field last_error? string

---@alias signalr.Endpoints (string|signalr.Endpoint|{ name: string })[]

---@class signalr.Options
---@field connection_string? string  (or endpoints)
---@field api_version? string  "2022-06-01" (default), a later date, or "v1"
---@field application? string
---@field timeout? number
---@field connect_timeout? number
---@field retries? integer
---@field retry_delay? number
---@field max_retry_delay? number
---@field retry_mode? "exponential"|"fixed"  fixed: retry_delay before every retry
---@field on_log? fun(level: "debug"|"info"|"warn"|"error", message: string)  never passed a secret
---@field proxy? string  "http://host:port" (libcurl paths; not inside nginx)
---@field verify_tls? boolean
---@field ca_file? string  not inside nginx (use lua_ssl_trusted_certificate)
---@field user_agent? string
---@field token_lifetime? number
---@field token_provider? fun(): string, number?
---@field authority_host? string
---@field managed_identity_endpoint? string
---@field client_certificate_password? string
---@field managed_identity_client_id? string
---@field managed_identity_object_id? string
---@field managed_identity_resource_id? string
---@field shared_dict? string
---@field transport? "auto"|"curl"|"cosocket"
---@field pool_size? integer
---@field async? boolean
---@field queue_size? integer
---@field max_connections? integer
---@field on_done? fun(req: signalr.Request)
---@field endpoints? (string|signalr.EndpointEntry)[]  several instances
---@field router? fun(endpoints: signalr.Endpoint[], ctx: { hub: string, user_id?: string, claims?: string, context?: any }): signalr.Endpoint|string|nil
---@field health_interval? number
---@field health_timeout? number
---@field health_retries? integer
---@field health_retry_delay? number
---@field mode? "transient"|"persistent"  persistent: server connections over WebSocket
---@field connection_count? integer  persistent: server connections per hub (1)
---@field max_message_size? integer  persistent: bytes a message may be (16 MiB)
---@field protocols? ("json"|"messagepack")[]  persistent: payloads each message carries
---@field handshake_timeout? number  persistent (15)
---@field keepalive_interval? number  persistent (5)
---@field server_timeout? number  persistent (30)
---@field ack_timeout? number  persistent (10)

---@class signalr
---@field _VERSION string
---@field null userdata  sends a JSON null inside arguments
local signalr = {}

---Create a client (no I/O).  Options errors raise; a bad connection string
---returns nil, message, details.
---@param opts string|signalr.Options
---@return signalr.Client|nil client
---@return string? message
---@return signalr.Details? details
function signalr.new(opts) end

---@class signalr.Request
---@field id integer
---@field op string
---@field done boolean
---@field result? any  what the blocking call returns (true, a boolean, a table, a token)
---@field error? string
---@field details? signalr.Details
local Request = {}
---End the request with ECANCELED unless it finished; details.sent says
---whether it may have reached the service.
---@return boolean canceled
function Request:cancel() end

---@class signalr.Client
local Client = {}
---@param name string
---@return signalr.Hub|nil, string?, signalr.Details?
function Client:hub(name) end
---@param opts? { endpoints: (string|signalr.Endpoint)[] }  several endpoints: which to check (default: all)
---@return true|nil, string?, signalr.Details?
function Client:health(opts) end
---@return table
function Client:info() end
---@return signalr.Endpoint[]
function Client:endpoints() end
function Client:close() end
---@param timeout? number
---@return integer|nil
function Client:poll(timeout) end
---@return integer|nil
function Client:step() end
---@return integer
function Client:pending() end
---@param timeout? number
---@return true|nil, string?, signalr.Details?
function Client:flush(timeout) end
--- Wait until every message sent so far has reached the service (persistent
--- mode: an acknowledged message behind the sends on each connection);
--- `details.lost` counts what may not have: send it again.
---@param timeout? number
---@return true|nil, string?, signalr.Details?
function Client:confirm(timeout) end
---@return { fd: integer, read: boolean, write: boolean }[]
function Client:fds() end
---@return number|nil
function Client:timeout() end
---@return integer? fd  an epoll descriptor for the whole client (Linux), nil elsewhere
function Client:pollfd() end
---@return "r"
function Client:events() end
--- Persistent mode: each hub's server connections and the counters
--- (with several endpoints, `{ endpoints = { [name] = ... } }`); nil otherwise.
---@return { hubs: table<string, { connections: { state: string, attempt: integer, last_error: string? }[], queued: integer }>, stats: { sent: integer, queued: integer, requeued: integer, expired: integer } }|nil
function Client:status() end
--- An event-loop adapter registers (and with nil unregisters) its handle:
--- `wake()` when a call queues while the loop idles, `detach()` on close.
---@param handle? { wake: fun(), detach: fun() }
function Client:set_loop(handle) end

---@alias signalr.Result true|signalr.Request|nil
---@alias signalr.Check boolean|signalr.Request|nil

---@class signalr.Hub
---@field name string
local Hub = {}
---@param target string
---@param args? any[]
---@param opts? { exclude?: string[], endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:broadcast(target, args, opts) end
---@param user_id string
---@param target string
---@param args? any[]
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:to_user(user_id, target, args, opts) end
---@param group string
---@param target string
---@param args? any[]
---@param opts? { exclude?: string[], endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:to_group(group, target, args, opts) end
---@param connection_id string
---@param target string
---@param args? any[]
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:to_connection(connection_id, target, args, opts) end
---Several users, groups or connections: one message in persistent mode,
---one REST send each in transient mode.
---@param user_ids string[]
---@param target string
---@param args? any[]
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:to_users(user_ids, target, args, opts) end
---@param groups string[]
---@param target string
---@param args? any[]
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:to_groups(groups, target, args, opts) end
---@param connection_ids string[]
---@param target string
---@param args? any[]
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:to_connections(connection_ids, target, args, opts) end
---@param connection_id string
---@param group string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:add_connection_to_group(connection_id, group, opts) end
---@param connection_id string
---@param group string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:remove_connection_from_group(connection_id, group, opts) end
---@param connection_id string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:remove_connection_from_all_groups(connection_id, opts) end
---@param user_id string
---@param group string
---@param opts? { ttl?: integer, endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:add_user_to_group(user_id, group, opts) end
---@param user_id string
---@param group string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:remove_user_from_group(user_id, group, opts) end
---@param user_id string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:remove_user_from_all_groups(user_id, opts) end
---@param connection_id string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Check, string?, signalr.Details?
function Hub:connection_exists(connection_id, opts) end
---@param user_id string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Check, string?, signalr.Details?
function Hub:user_exists(user_id, opts) end
---@param group string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Check, string?, signalr.Details?
function Hub:group_exists(group, opts) end
---@param user_id string
---@param group string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Check, string?, signalr.Details?
function Hub:user_in_group(user_id, group, opts) end
---@param connection_id string
---@param reason? string
---@param opts? { endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:close_connection(connection_id, reason, opts) end
---@param opts? { exclude?: string[], reason?: string, endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:close_all_connections(opts) end
---@param group string
---@param opts? { exclude?: string[], reason?: string, endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:close_group_connections(group, opts) end
---@param user_id string
---@param opts? { exclude?: string[], reason?: string, endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:close_user_connections(user_id, opts) end
---@param group string
---@param opts? { top?: integer, max_page_size?: integer, endpoints?: signalr.Endpoints }
---@return { connection_id: string, user_id?: string }[]|signalr.Request|nil, string?, signalr.Details?
function Hub:group_connections(group, opts) end
---@param opts? { user_id?: string, lifetime?: number, endpoints?: signalr.Endpoints }
---@return string|signalr.Request|nil token, string?, signalr.Details?
function Hub:generate_client_token(opts) end
---@param opts? { user_id?: string, claims?: table<string, any>, lifetime?: number, endpoints?: signalr.Endpoints, context?: any, diagnostic?: boolean, detailed_errors?: boolean }
---@return { url: string, accessToken: string }|nil, string?, signalr.Details?
function Hub:negotiate(opts) end
---@param commands ({ type: "SendMessage", target: string, arguments?: any[] }|{ type: "JoinGroup"|"LeaveGroup", group: string }|{ type: "CloseConnection", reason?: string })[]
---@param opts? { filter?: string, endpoints?: signalr.Endpoints }
---@return signalr.Result, string?, signalr.Details?
function Hub:execute(commands, opts) end
---@param connection_id string
---@param target string
---@param args? any[]
---@param opts? { endpoints?: signalr.Endpoints }
---@return { result: any, protocol?: string }|signalr.Request|nil, string?, signalr.Details?
function Hub:invoke(connection_id, target, args, opts) end
---@param action table  an Azure Functions output-binding message or group action
---@return signalr.Result, string?, signalr.Details?
function Hub:send(action) end

---@class signalr.upstream.Event
---@field hub string
---@field category string  "connections" or "messages"
---@field event string
---@field connection_id string
---@field user_id? string
---@field claims table<string, string>
---@field query table<string, string>
---@field protocol "json"|"messagepack"
---@field error? string  disconnected: why
---@field invocation? { invocation_id?: string, target: string, arguments: any[] }
---@field auth? table  the verified bearer token's claims (spec.auth)

---@class signalr.upstream.Auth
---@field issuer string|string[]  e.g. "https://sts.windows.net/<tenant id>/"
---@field audience string|string[]  the upstream setting's resource
---@field public_keys? string|string[]  PEM public keys or certificates
---@field jwks? string  a JWKS document's JSON text (keys by kid)
---@field clock_skew? number  seconds allowed on exp and nbf (300)

---@class signalr.upstream.Spec
---@field keys? string|string[]  AccessKeys or connection strings (optional with auth)
---@field auth? signalr.upstream.Auth  the service's bearer token (upstream auth ManagedIdentity)
---@field hubs table<string, table>  hub -> { connected?, disconnected?, messages = { name = fn(ev, ...) } }
---@field max_body? integer
---@field on_error? fun(ev: signalr.upstream.Event, err: string)
---@field hide_errors? boolean

---require "signalr.upstream": serverless event handlers
---@class signalr.upstream
---@field null userdata
local upstream = {}
---@return true|nil, string?, signalr.Details?
function upstream.verify(headers, keys) end
---@param auth signalr.upstream.Auth
---@return table|nil claims, string?, signalr.Details?
function upstream.verify_bearer(headers, auth) end
---@return signalr.upstream.Event|nil, string?, signalr.Details?
function upstream.parse(headers, body) end
---@return string body, string content_type
function upstream.completion(event, result) end
---@return string body, string content_type
function upstream.completion_error(event, message) end
---@param spec signalr.upstream.Spec
---@return integer status, string body, string? content_type, string? why
function upstream.dispatch(spec, headers, body) end
---@param spec signalr.upstream.Spec
function upstream.handle(spec) end

---@class signalr.ServerOptions
---@field connection_string string
---@field hub? string
---@field hubs? string[]
---@field connection_count? integer server connections per hub (5)
---@field detailed_errors? boolean handler messages reach clients
---@field client_max_message_size? integer bytes a client's message may take (32768)
---@field on_log? fun(level: string, message: string)

---@class signalr.Ctx
---@field connection_id string
---@field user_id string|nil
---@field claims { type: string, value: string }[]
---@field query string
---@field headers table<string, string[]>
---@field protocol "json"|"messagepack"
---@field items table
---@field hub string
local Ctx = {}
---@return true|nil, string?, signalr.Details?
function Ctx:send(target, ...) end
---@param reason? string
function Ctx:close(reason) end
---@param group string
---@return true|nil, string?, signalr.Details?
function Ctx:join(group) end
---@param group string
---@return true|nil, string?, signalr.Details?
function Ctx:leave(group) end
---@param what signalr.Request|fun(): boolean
---@param timeout? number
function Ctx:await(what, timeout) end

---@class signalr.Server
local Server = {}
---@param name string
---@param fn fun(ctx: signalr.Ctx, ...): any
---@return signalr.Server
function Server:on(name, fn) end
---@param fn fun(ctx: signalr.Ctx)
function Server:on_connected(fn) end
---@param fn fun(ctx: signalr.Ctx, err: string|nil)
function Server:on_disconnected(fn) end
---@param name string
---@return signalr.Hub|nil, string?, signalr.Details?
function Server:hub(name) end
function Server:run() end
---@param timeout? number
function Server:poll(timeout) end
function Server:step() end
---@return number|nil
function Server:timeout() end
---@return integer|nil
function Server:pollfd() end
function Server:close() end

---@param opts signalr.ServerOptions
---@return signalr.Server|nil, string?, signalr.Details?
function signalr.server(opts) end
---@param message string
---@return table
function signalr.hub_error(message) end

return signalr
