-- The main job, as a game server or an nginx handler does it: broadcast,
-- send to a user and to a group, manage membership.  Run by `make demo`
-- against the bundled emulator; works the same against Azure.
local signalr = require "signalr"

local client = assert(signalr.new(os.getenv("AzureSignalRConnectionString")))
local hub = assert(client:hub("chat"))

local function step(what, ok, err)
    print(string.format("  %-44s -> %s", what, ok == nil and ("FAILED: " .. err) or tostring(ok)))
end

step("broadcast to everyone", hub:broadcast("newMessage", { "server", "hello everyone" }))
step("to_user alice (both of her tabs)", hub:to_user("alice", "newMessage", { "server", "hi alice" }))
step("add_user_to_group bob -> red", hub:add_user_to_group("bob", "red"))
step("add_user_to_group carol -> red", hub:add_user_to_group("carol", "red"))
step("user_in_group carol, red?", hub:user_in_group("carol", "red"))
step("to_group red", hub:to_group("red", "newMessage", { "server", "red team, go!" }))
step("remove_user_from_group bob <- red", hub:remove_user_from_group("bob", "red"))
step("to_group red (bob has left)", hub:to_group("red", "newMessage", { "server", "red, regroup" }))
step("send{ userId = carol } (Functions shape)",
    hub:send { target = "newMessage", arguments = { "server", { score = 42 } }, userId = "carol" })
step("user_exists dave?", hub:user_exists("dave"))
step("group_exists red?", hub:group_exists("red"))
assert(hub:broadcast("demoDone", {}))
