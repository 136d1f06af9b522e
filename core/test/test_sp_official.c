/* test_sp_official.c - the service protocol against every vector of the
 * official implementation's protocol tests: our writers byte for byte
 * where our API can say the message, our reader on all of them.
 *
 * The vectors are facts: base64 of one message body (no length prefix)
 * from Azure/azure-signalr, file
 * test/Microsoft.Azure.SignalR.Protocols.Tests/ServiceProtocolFacts.cs at
 * commit 31686ed71ff8140f5b02c24b4bb08a7a04f4d788 (2024-03-22).  OLD are
 * its TestCompatibilityData (older forms its reader still accepts; its
 * writer no longer produces any of them), NEW its TestData (what its
 * writer writes, ServiceProtocol.cs at the same commit).  The comment over
 * each vector is the message it encodes, as a MessagePack array; PAYLOADS
 * is {"json": bin, "messagepack": bin} holding 7 arbitrary bytes each (8
 * in PAYLOADS8), and the names in capitals are the macros below.
 *
 * Every vector goes through signalr_sp_next (maps through
 * signalr_sp_pairs_*), whole and cut short at every byte, and must give
 * the fields the reader exposes.  Where our writers can say the message
 * (enc), we build it through the public API and compare the frame with
 * the official bytes:
 *   - exactly, when payload_at and ext_at are 0;
 *   - ext_at: with the tracing id (Ext key 1) taken out of the official
 *     Ext, the one thing in it we never write;
 *   - payload_at: with the official payloads map swapped for ours (our
 *     data writer builds hub messages from a target and arguments, so it
 *     cannot carry the vectors' arbitrary bytes); the protocol names and
 *     their order must still match.
 * A NEW vector our writers cannot say is read only, and why says why.
 * Run with -v to list those. */
#include "harness.h"
#include "signalr.h"

#include <stdint.h>
#include <stdlib.h>

#define NAMEID "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/" \
               "nameidentifier"
/* the headers of OpenConnectionWithHeaders, a pair per value */
#define HEADERS "header-key-1=header-value-1\n"  \
                "header-key-2=heaer-value-2a\n"  \
                "header-key-2=header-value-2b\n" \
                "header-key-3=heaer-value-3a\n"  \
                "header-key-3=header-value-3b\n" \
                "header-key-3=header-value-3c\n"
#define QUERY2 "query1=value1&query2=query2&query3=value3"
#define ARGNULL "Value cannot be null. (Parameter 'token invalid')"
#define BYTES7 "\x01\x02\x03\x04\x05\x06\x07"
#define SERVICE "sent by the service: read only"

static const char *const L_CONN67[] = { "conn6", "conn7" };
static const char *const L_CONN789[] = { "conn7", "conn8", "conn9" };
static const char *const L_CONN1213[] = { "conn12", "conn13" };
static const char *const L_USER12[] = { "user1", "user2" };
static const char *const L_GROUP45[] = { "group4", "group5" };
static const char *const L_CONNID[] = { "connId" };

enum { OLD, NEW };
/* which of our writers says the message */
enum { READ_ONLY, HANDSHAKE, PING, OP, DATA, CDATA };

typedef struct {
    int set;
    const char *name;  /* the official test's name */
    const char *b64;
    /* writing */
    int enc;
    int conn_type;               /* HANDSHAKE */
    const char *kv[2];           /* PING */
    size_t nkv;
    signalr_sp_op op;            /* OP */
    signalr_sp_data data;        /* DATA: target and protocols added */
    const char *cd_id;           /* CDATA: no data type */
    const char *cd_payload;
    int payload_at, ext_at;      /* items compared as said above */
    const char *why;             /* NEW and read only: what we lack */
    /* reading: what signalr_sp_next gives (NULL: a NULL pointer) */
    int type;
    long long num[2];
    const char *str[4];
    const char *map[2];          /* pairs as "name=value\n" */
    const char *ping;            /* likewise */
} vector;

static const vector VECTORS[] = {
    /* [5, "conn3", nil] */
    { OLD, "CloseConnection",
      "kwWlY29ubjPA",
      .type = 5, .str = { "conn3" } },
    /* [5, "conn4", "Error message."] */
    { OLD, "CloseConnectionWithError",
      "kwWlY29ubjSuRXJyb3IgbWVzc2FnZS4=",
      .type = 5, .str = { "conn4", "Error message." } },
    /* [5, "conn4", "Error message.", {"foo": ["bar"]}] */
    { OLD, "CloseConnectionWithHeaders",
      "lAWlY29ubjSuRXJyb3IgbWVzc2FnZS6Bo2Zvb5GjYmFy",
      .type = 5, .str = { "conn4", "Error message." }, .map = { NULL,
      "foo=bar\n" } },
    /* [1, 1] */
    { OLD, "HandshakeRequest",
      "kgEB",
      .type = 1 },
    /* [1, 1, 1, "abc"] */
    { OLD, "HandshakeRequestWithProperty",
      "lAEBAaNhYmM=",
      .type = 1 },
    /* [1, 1, 0, "", 0] */
    { OLD, "HandshakeRequest_NoOptionalField",
      "lQEBAKAA",
      .type = 1 },
    /* [1, 1, 1, "abc", 0] */
    { OLD, "HandshakeRequestWithProperty_NoOptionalField",
      "lQEBAaNhYmMA",
      .type = 1 },
    /* [1, 1, 0, "", 1] */
    { OLD, "HandshakeRequestWithMigratableStatus_NoOptionalField",
      "lQEBAKAB",
      .type = 1 },
    /* [2, ""] */
    { OLD, "HandshakeResponse_NoOptionalField",
      "kgKg",
      .type = 2, .str = { "" } },
    /* [2, "", {}] */
    { OLD, "HandshakeResponse_NoConnectionId",
      "kwKggA==",
      .type = 2, .str = { "" } },
    /* [2, "Version mismatch."] */
    { OLD, "HandshakeResponseWithError_NoOptionalField",
      "kgKxVmVyc2lvbiBtaXNtYXRjaC4=",
      .type = 2, .str = { "Version mismatch." } },
    /* [2, "Version mismatch.", {}] */
    { OLD, "HandshakeResponseWithError_NoConnectionId",
      "kwKxVmVyc2lvbiBtaXNtYXRjaC6A",
      .type = 2, .str = { "Version mismatch." } },
    /* [4, "conn1", {}, {}, ""] */
    { OLD, "OpenConnection_NoOptionalField",
      "lQSlY29ubjGAgKA=",
      .type = 4, .str = { "conn1", "" }, .map = { "", "" } },
    /* [4, "conn2", {NAMEID: "user1"}, {}, ""] */
    { OLD, "OpenConnectionWithClaims_NoOptionalField",
      "lQSlY29ubjKB2URodHRwOi8vc2NoZW1hcy54bWxzb2FwLm9yZy93cy8yMDA1"
      "LzA1L2lkZW50aXR5L2NsYWltcy9uYW1laWRlbnRpZmllcqV1c2VyMYCg",
      .type = 4, .str = { "conn2", "" }, .map = { NAMEID "=user1\n", "" } },
    /* [4, "conn3", {}, HEADERS, ""] */
    { OLD, "OpenConnectionWithHeaders_NoOptionalField",
      "lQSlY29ubjOAg6xoZWFkZXIta2V5LTGRrmhlYWRlci12YWx1ZS0xrGhlYWRl"
      "ci1rZXktMpKuaGVhZXItdmFsdWUtMmGvaGVhZGVyLXZhbHVlLTJirGhlYWRl"
      "ci1rZXktM5OuaGVhZXItdmFsdWUtM2GvaGVhZGVyLXZhbHVlLTNir2hlYWRl"
      "ci12YWx1ZS0zY6A=",
      .type = 4, .str = { "conn3", "" }, .map = { "", HEADERS } },
    /* [4, "conn4", {}, {}, "query1=value1"] */
    { OLD, "OpenConnectionWithQueryString1_NoOptionalField",
      "lQSlY29ubjSAgK1xdWVyeTE9dmFsdWUx",
      .type = 4, .str = { "conn4", "query1=value1" }, .map = { "", "" } },
    /* [4, "conn4", {}, {}, QUERY2] */
    { OLD, "OpenConnectionWithQueryString2_NoOptionalField",
      "lQSlY29ubjSAgNkpcXVlcnkxPXZhbHVlMSZxdWVyeTI9cXVlcnkyJnF1ZXJ5"
      "Mz12YWx1ZTM=",
      .type = 4, .str = { "conn4", QUERY2 }, .map = { "", "" } },
    /* [5, "conn3", "", {}] */
    { OLD, "CloseConnection_NoOptionalField",
      "lAWlY29ubjOggA==",
      .type = 5, .str = { "conn3", "" }, .map = { NULL, "" } },
    /* [5, "conn4", "Error message.", {}] */
    { OLD, "CloseConnectionWithError_NoOptionalField",
      "lAWlY29ubjSuRXJyb3IgbWVzc2FnZS6A",
      .type = 5, .str = { "conn4", "Error message." }, .map = { NULL, "" } },
    /* [6, "conn5", bin 01..07] */
    { OLD, "ConnectionData_NoOptionalField",
      "kwalY29ubjXEBwECAwQFBgc=",
      .type = 6, .str = { "conn5", BYTES7 } },
    /* [7, ["conn6", "conn7"], PAYLOADS] */
    { OLD, "MultiConnectionData_NoOptionalField",
      "kweSpWNvbm42pWNvbm43gqRqc29uxAcCAwQFBgcBq21lc3NhZ2VwYWNrxAcD"
      "BAUGBwEC",
      .type = 7 },
    /* [8, "user1", PAYLOADS] */
    { OLD, "UserData_NoOptionalField",
      "kwildXNlcjGCpGpzb27EBwYHAQIDBAWrbWVzc2FnZXBhY2vEBwcBAgMEBQY=",
      .type = 8 },
    /* [9, ["user1", "user2"], PAYLOADS] */
    { OLD, "MultiUserData_NoOptionalField",
      "kwmSpXVzZXIxpXVzZXIygqRqc29uxAcGBwECAwQFq21lc3NhZ2VwYWNrxAcH"
      "AQIDBAUG",
      .type = 9 },
    /* [10, [], PAYLOADS] */
    { OLD, "Broadcast_NoOptionalField",
      "kwqQgqRqc29uxAcEBQYHAQIDq21lc3NhZ2VwYWNrxAcFBgcBAgME",
      .type = 10 },
    /* [10, ["conn7", "conn8", "conn9"], PAYLOADS] */
    { OLD, "BroadcastExcept_NoOptionalField",
      "kwqTpWNvbm43pWNvbm44pWNvbm45gqRqc29uxAcGBwECAwQFq21lc3NhZ2Vw"
      "YWNrxAcHAQIDBAUG",
      .type = 10 },
    /* [11, "conn10", "group1"] */
    { OLD, "JoinGroup_NoOptionalField",
      "kwumY29ubjEwpmdyb3VwMQ==",
      .type = 11 },
    /* [12, "conn11", "group2"] */
    { OLD, "LeaveGroup_NoOptionalField",
      "kwymY29ubjExpmdyb3VwMg==",
      .type = 12 },
    /* [16, "conn10", "group1"] */
    { OLD, "UserJoinGroup_NoOptionalField",
      "kxCmY29ubjEwpmdyb3VwMQ==",
      .type = 16 },
    /* [17, "conn11", "group2"] */
    { OLD, "UserLeaveGroup_NoOptionalField",
      "kxGmY29ubjExpmdyb3VwMg==",
      .type = 17 },
    /* [13, "group3", [], PAYLOADS] */
    { OLD, "GroupBroadcast_NoOptionalField",
      "lA2mZ3JvdXAzkIKkanNvbsQHBgcBAgMEBattZXNzYWdlcGFja8QHBwECAwQF"
      "Bg==",
      .type = 13 },
    /* [13, "group3", ["conn12", "conn13"], PAYLOADS] */
    { OLD, "GroupBroadcastExcept_NoOptionalField",
      "lA2mZ3JvdXAzkqZjb25uMTKmY29ubjEzgqRqc29uxAcGBwECAwQFq21lc3Nh"
      "Z2VwYWNrxAcHAQIDBAUG",
      .type = 13 },
    /* [14, ["group4", "group5"], PAYLOADS8] */
    { OLD, "MultiGroupBroadcast_NoOptionalField",
      "kw6Spmdyb3VwNKZncm91cDWCpGpzb27ECAECAwQFBgcIq21lc3NhZ2VwYWNr"
      "xAgHCAECAwQFBg==",
      .type = 14 },
    /* [18, "conn14", "group1", 1] */
    { OLD, "JoinGroupWithAck_NoOptionalField",
      "lBKmY29ubjE0pmdyb3VwMQE=",
      .type = 18 },
    /* [19, "conn15", "group2", 1] */
    { OLD, "LeaveGroupWithAck_NoOptionalField",
      "lBOmY29ubjE1pmdyb3VwMgE=",
      .type = 19 },
    /* [20, 1, 100, ""] */
    { OLD, "Ack_NoOptionalField",
      "lBQBZKA=",
      .type = 20, .num = { 1, 100 }, .str = { "" } },
    /* [20, 2, 101, "Joined group successfully"] */
    { OLD, "AckWithMessage_NoOptionalField",
      "lBQCZblKb2luZWQgZ3JvdXAgc3VjY2Vzc2Z1bGx5",
      .type = 20, .num = { 2, 101 }, .str = { "Joined group successfully" } },
    /* [13, "group3", ["conn12", "conn13"], PAYLOADS, {}] */
    { OLD, "GroupBroadcastExcept",
      "lQ2mZ3JvdXAzkqZjb25uMTKmY29ubjEzgqRqc29uxAcGBwECAwQFq21lc3Nh"
      "Z2VwYWNrxAcHAQIDBAUGgA==",
      .type = 13 },
    /* [13, "group3", [], PAYLOADS, {}] */
    { OLD, "GroupBroadcast",
      "lQ2mZ3JvdXAzkIKkanNvbsQHBgcBAgMEBattZXNzYWdlcGFja8QHBwECAwQF"
      "BoA=",
      .type = 13 },
    /* [13, "group3", [], PAYLOADS, {1: 1234}] */
    { OLD, "GroupBroadcastWithTracingId",
      "lQ2mZ3JvdXAzkIKkanNvbsQHBgcBAgMEBattZXNzYWdlcGFja8QHBwECAwQF"
      "BoEBzQTS",
      .type = 13 },
    /* [1, 1, 0, "", 0, {}] */
    { NEW, "HandshakeRequest",
      "lgEBAKAAgA==",
      .enc = HANDSHAKE, .conn_type = SIGNALR_SP_DEFAULT_CONNECTION, .type = 1
      },
    /* [1, 1, 1, "abc", 0, {}] */
    { NEW, "HandshakeRequestWithProperty",
      "lgEBAaNhYmMAgA==",
      .why = "an OnDemand connection's target", .type = 1 },
    /* [1, 1, 0, "", 1, {}] */
    { NEW, "HandshakeRequestWithMigratableStatus",
      "lgEBAKABgA==",
      .why = "a migration level", .type = 1 },
    /* [2, "", {}, nil] */
    { NEW, "HandshakeResponse",
      "lAKggMA=",
      .why = SERVICE, .type = 2, .str = { "" } },
    /* [2, "Version mismatch.", {}, nil] */
    { NEW, "HandshakeResponseWithError",
      "lAKxVmVyc2lvbiBtaXNtYXRjaC6AwA==",
      .why = SERVICE, .type = 2, .str = { "Version mismatch." } },
    /* [2, "", {}, "abc"] */
    { NEW, "HandshakeResponseWithConnectionId",
      "lAKggKNhYmM=",
      .why = SERVICE, .type = 2, .str = { "", "abc" } },
    /* [28, "token", nil, {}] */
    { NEW, "AccessKeyRequestMessage",
      "lByldG9rZW7AgA==",
      .enc = OP, .op = { .type = SIGNALR_SP_ACCESS_KEY_REQUEST, .id = "token"
      }, .type = 28 },
    /* [28, "token", "kid", {}] */
    { NEW, "AccessKeyRequestMessageWithKid",
      "lByldG9rZW6ja2lkgA==",
      .enc = OP, .op = { .type = SIGNALR_SP_ACCESS_KEY_REQUEST, .id = "token",
      .group = "kid" }, .type = 28 },
    /* [29, "kid", "key", nil, nil, {}] */
    { NEW, "AccessKeyResponseMessage",
      "lh2ja2lko2tlecDAgA==",
      .why = SERVICE, .type = 29, .str = { "kid", "key" } },
    /* [29, nil, nil, "ArgumentNullException", ARGNULL, {}] */
    { NEW, "AccessKeyResponseMessageWithException",
      "lh3AwLVBcmd1bWVudE51bGxFeGNlcHRpb27ZMVZhbHVlIGNhbm5vdCBiZSBu"
      "dWxsLiAoUGFyYW1ldGVyICd0b2tlbiBpbnZhbGlkJymA",
      .why = SERVICE, .type = 29, .str = { NULL, NULL, "ArgumentNullException",
      ARGNULL } },
    /* [3] */
    { NEW, "Ping",
      "kQM=",
      .enc = PING, .type = 3 },
    /* [3, "a", "b"] */
    { NEW, "Ping+",
      "kwOhYaFi",
      .enc = PING, .kv = { "a", "b" }, .nkv = 2, .type = 3, .ping = "a=b\n" },
    /* [4, "conn1", {}, {}, "", {}] */
    { NEW, "OpenConnection",
      "lgSlY29ubjGAgKCA",
      .why = SERVICE, .type = 4, .str = { "conn1", "" }, .map = { "", "" } },
    /* [4, "conn1", {}, {}, "", {1: 888}] */
    { NEW, "OpenConnectionWithTracingId",
      "lgSlY29ubjGAgKCBAc0DeA==",
      .why = SERVICE, .type = 4, .str = { "conn1", "" }, .map = { "", "" } },
    /* [4, "conn2", {NAMEID: "user1"}, {}, "", {}] */
    { NEW, "OpenConnectionWithClaims",
      "lgSlY29ubjKB2URodHRwOi8vc2NoZW1hcy54bWxzb2FwLm9yZy93cy8yMDA1"
      "LzA1L2lkZW50aXR5L2NsYWltcy9uYW1laWRlbnRpZmllcqV1c2VyMYCggA==",
      .why = SERVICE, .type = 4, .str = { "conn2", "" }, .map = { NAMEID
      "=user1\n", "" } },
    /* [4, "conn3", {}, HEADERS, "", {}] */
    { NEW, "OpenConnectionWithHeaders",
      "lgSlY29ubjOAg6xoZWFkZXIta2V5LTGRrmhlYWRlci12YWx1ZS0xrGhlYWRl"
      "ci1rZXktMpKuaGVhZXItdmFsdWUtMmGvaGVhZGVyLXZhbHVlLTJirGhlYWRl"
      "ci1rZXktM5OuaGVhZXItdmFsdWUtM2GvaGVhZGVyLXZhbHVlLTNir2hlYWRl"
      "ci12YWx1ZS0zY6CA",
      .why = SERVICE, .type = 4, .str = { "conn3", "" }, .map = { "", HEADERS }
      },
    /* [4, "conn4", {}, {}, "query1=value1", {}] */
    { NEW, "OpenConnectionWithQueryString1",
      "lgSlY29ubjSAgK1xdWVyeTE9dmFsdWUxgA==",
      .why = SERVICE, .type = 4, .str = { "conn4", "query1=value1" }, .map = {
      "", "" } },
    /* [4, "conn4", {}, {}, QUERY2, {}] */
    { NEW, "OpenConnectionWithQueryString2",
      "lgSlY29ubjSAgNkpcXVlcnkxPXZhbHVlMSZxdWVyeTI9cXVlcnkyJnF1ZXJ5"
      "Mz12YWx1ZTOA",
      .why = SERVICE, .type = 4, .str = { "conn4", QUERY2 }, .map = { "", "" }
      },
    /* [4, "conn1", {}, {}, "", {3: "json"}] */
    { NEW, "OpenConnection_WithProtocol",
      "lgSlY29ubjGAgKCBA6Rqc29u",
      .why = SERVICE, .type = 4, .str = { "conn1", "", "json" }, .map = { "",
      "" } },
    /* [5, "conn3", "", {}, {}] */
    { NEW, "CloseConnection",
      "lQWlY29ubjOggIA=",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_CONNECTION, .id = "conn3" },
      .type = 5, .str = { "conn3", "" }, .map = { NULL, "" } },
    /* [5, "conn4", "Error message.", {}, {}] */
    { NEW, "CloseConnectionWithError",
      "lQWlY29ubjSuRXJyb3IgbWVzc2FnZS6AgA==",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_CONNECTION, .id = "conn4",
      .text = "Error message." }, .type = 5, .str = { "conn4", "Error message."
      }, .map = { NULL, "" } },
    /* [5, "conn4", "", {}, {1: 123}] */
    { NEW, "CloseConnectionWithTracingId",
      "lQWlY29ubjSggIEBew==",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_CONNECTION, .id = "conn4" },
      .ext_at = 4, .type = 5, .str = { "conn4", "" }, .map = { NULL, "" } },
    /* [6, "conn5", bin 01..07, {}] */
    { NEW, "ConnectionData",
      "lAalY29ubjXEBwECAwQFBgeA",
      .enc = CDATA, .cd_id = "conn5", .cd_payload = BYTES7, .type = 6, .str = {
      "conn5", BYTES7 } },
    /* [6, "conn6", bin 01..07, {5: 2, 6: true}] */
    { NEW, "ConnectionData_WithTypeAndPartial",
      "lAalY29ubjbEBwECAwQFBgeCBQIGww==",
      .why = "IsPartial (Ext 6)", .type = 6, .num = { 2, 1 }, .str = { "conn6",
      BYTES7 } },
    /* [38, "conn7", {}] */
    { NEW, "ConnectionReconnect",
      "kyalY29ubjeA",
      .why = "no writer for type 38", .type = 38, .str = { "conn7" } },
    /* [7, ["conn6", "conn7"], PAYLOADS, {}] */
    { NEW, "MultiConnectionData",
      "lAeSpWNvbm42pWNvbm43gqRqc29uxAcCAwQFBgcBq21lc3NhZ2VwYWNrxAcD"
      "BAUGBwECgA==",
      .enc = DATA, .data = { .type = SIGNALR_SP_MULTI_CONNECTION_DATA,
      .list = L_CONN67, .count = 2 }, .payload_at = 2, .type = 7 },
    /* [8, "user1", PAYLOADS, {}] */
    { NEW, "UserData",
      "lAildXNlcjGCpGpzb27EBwYHAQIDBAWrbWVzc2FnZXBhY2vEBwcBAgMEBQaA",
      .enc = DATA, .data = { .type = SIGNALR_SP_USER_DATA, .id = "user1" },
      .payload_at = 2, .type = 8 },
    /* [9, ["user1", "user2"], PAYLOADS, {}] */
    { NEW, "MultiUserData",
      "lAmSpXVzZXIxpXVzZXIygqRqc29uxAcGBwECAwQFq21lc3NhZ2VwYWNrxAcH"
      "AQIDBAUGgA==",
      .enc = DATA, .data = { .type = SIGNALR_SP_MULTI_USER_DATA,
      .list = L_USER12, .count = 2 }, .payload_at = 2, .type = 9 },
    /* [10, [], PAYLOADS, {}] */
    { NEW, "Broadcast",
      "lAqQgqRqc29uxAcEBQYHAQIDq21lc3NhZ2VwYWNrxAcFBgcBAgMEgA==",
      .enc = DATA, .data = { .type = SIGNALR_SP_BROADCAST }, .payload_at = 2,
      .type = 10 },
    /* [10, ["conn7", "conn8", "conn9"], PAYLOADS, {}] */
    { NEW, "BroadcastExcept",
      "lAqTpWNvbm43pWNvbm44pWNvbm45gqRqc29uxAcGBwECAwQFq21lc3NhZ2Vw"
      "YWNrxAcHAQIDBAUGgA==",
      .enc = DATA, .data = { .type = SIGNALR_SP_BROADCAST, .list = L_CONN789,
      .count = 3 }, .payload_at = 2, .type = 10 },
    /* [11, "conn10", "group1", {}] */
    { NEW, "JoinGroup",
      "lAumY29ubjEwpmdyb3VwMYA=",
      .why = "type 11: we join with an ack (18)", .type = 11 },
    /* [12, "conn11", "group2", {}] */
    { NEW, "LeaveGroup",
      "lAymY29ubjExpmdyb3VwMoA=",
      .why = "type 12: we leave with an ack (19)", .type = 12 },
    /* [16, "conn10", "group1", {}] */
    { NEW, "UserJoinGroup",
      "lBCmY29ubjEwpmdyb3VwMYA=",
      .why = "type 16: we join with an ack (26)", .type = 16 },
    /* [16, "conn10", "group1", {2: 100}] */
    { NEW, "UserJoinGroupWithTtl",
      "lBCmY29ubjEwpmdyb3VwMYECZA==",
      .why = "type 16: we join with an ack (26)", .type = 16 },
    /* [17, "conn11", "group2", {}] */
    { NEW, "UserLeaveGroup",
      "lBGmY29ubjExpmdyb3VwMoA=",
      .why = "type 17: we leave with an ack (27)", .type = 17 },
    /* [13, "group3", [], PAYLOADS, {}, [], nil] */
    { NEW, "GroupBroadcast",
      "lw2mZ3JvdXAzkIKkanNvbsQHBgcBAgMEBattZXNzYWdlcGFja8QHBwECAwQF"
      "BoCQwA==",
      .enc = DATA, .data = { .type = SIGNALR_SP_GROUP_BROADCAST, .id = "group3"
      }, .payload_at = 3, .type = 13 },
    /* [13, "group3", ["conn12", "conn13"], PAYLOADS, {}, [], nil] */
    { NEW, "GroupBroadcastExcept",
      "lw2mZ3JvdXAzkqZjb25uMTKmY29ubjEzgqRqc29uxAcGBwECAwQFq21lc3Nh"
      "Z2VwYWNrxAcHAQIDBAUGgJDA",
      .enc = DATA, .data = { .type = SIGNALR_SP_GROUP_BROADCAST,
      .id = "group3", .list = L_CONN1213, .count = 2 }, .payload_at = 3,
      .type = 13 },
    /* [13, "group3", ["conn12", "conn13"], PAYLOADS, {}, ["user1", "user2"],
     * "user3"] */
    { NEW, "GroupBroadcastExceptUser",
      "lw2mZ3JvdXAzkqZjb25uMTKmY29ubjEzgqRqc29uxAcGBwECAwQFq21lc3Nh"
      "Z2VwYWNrxAcHAQIDBAUGgJKldXNlcjGldXNlcjKldXNlcjM=",
      .why = "excluded users and a caller user id", .type = 13 },
    /* [13, "group3", [], PAYLOADS, {1: 1234}, [], nil] */
    { NEW, "GroupBroadcastWithTracingId",
      "lw2mZ3JvdXAzkIKkanNvbsQHBgcBAgMEBattZXNzYWdlcGFja8QHBwECAwQF"
      "BoEBzQTSkMA=",
      .enc = DATA, .data = { .type = SIGNALR_SP_GROUP_BROADCAST, .id = "group3"
      }, .payload_at = 3, .ext_at = 4, .type = 13 },
    /* [14, ["group4", "group5"], PAYLOADS8, {}] */
    { NEW, "MultiGroupBroadcast",
      "lA6Spmdyb3VwNKZncm91cDWCpGpzb27ECAECAwQFBgcIq21lc3NhZ2VwYWNr"
      "xAgHCAECAwQFBoA=",
      .enc = DATA, .data = { .type = SIGNALR_SP_MULTI_GROUP_BROADCAST,
      .list = L_GROUP45, .count = 2 }, .payload_at = 2, .type = 14 },
    /* [15, "Maximum message count limit reached: 100000"] */
    { NEW, "ServiceError",
      "kg/ZK01heGltdW0gbWVzc2FnZSBjb3VudCBsaW1pdCByZWFjaGVkOiAxMDAw"
      "MDA=",
      .why = SERVICE, .type = 15, .str = {
      "Maximum message count limit reached: 100000" } },
    /* [18, "conn14", "group1", 1, {}] */
    { NEW, "JoinGroupWithAck",
      "lRKmY29ubjE0pmdyb3VwMQGA",
      .enc = OP, .op = { .type = SIGNALR_SP_JOIN_GROUP_WITH_ACK,
      .id = "conn14", .group = "group1", .ack_id = 1 }, .type = 18 },
    /* [19, "conn15", "group2", 1, {}] */
    { NEW, "LeaveGroupWithAck",
      "lROmY29ubjE1pmdyb3VwMgGA",
      .enc = OP, .op = { .type = SIGNALR_SP_LEAVE_GROUP_WITH_ACK,
      .id = "conn15", .group = "group2", .ack_id = 1 }, .type = 19 },
    /* [20, 1, 100, "", {}] */
    { NEW, "Ack",
      "lRQBZKCA",
      .why = SERVICE, .type = 20, .num = { 1, 100 }, .str = { "" } },
    /* [20, 2, 101, "Joined group successfully", {}] */
    { NEW, "AckWithMessage",
      "lRQCZblKb2luZWQgZ3JvdXAgc3VjY2Vzc2Z1bGx5gA==",
      .why = SERVICE, .type = 20, .num = { 2, 101 }, .str = {
      "Joined group successfully" } },
    /* [6, "conn5", bin 01..07, {1: 1234}] */
    { NEW, "ConnectionDataWithTracingId",
      "lAalY29ubjXEBwECAwQFBgeBAc0E0g==",
      .enc = CDATA, .cd_id = "conn5", .cd_payload = BYTES7, .ext_at = 3,
      .type = 6, .str = { "conn5", BYTES7 } },
    /* [7, ["conn6", "conn7"], PAYLOADS, {1: 1234}] */
    { NEW, "MultiConnectionDataWithTracingId",
      "lAeSpWNvbm42pWNvbm43gqRqc29uxAcCAwQFBgcBq21lc3NhZ2VwYWNrxAcD"
      "BAUGBwECgQHNBNI=",
      .enc = DATA, .data = { .type = SIGNALR_SP_MULTI_CONNECTION_DATA,
      .list = L_CONN67, .count = 2 }, .payload_at = 2, .ext_at = 3, .type = 7
      },
    /* [8, "user1", PAYLOADS, {1: 1234}] */
    { NEW, "UserDataWithTracingId",
      "lAildXNlcjGCpGpzb27EBwYHAQIDBAWrbWVzc2FnZXBhY2vEBwcBAgMEBQaB"
      "Ac0E0g==",
      .enc = DATA, .data = { .type = SIGNALR_SP_USER_DATA, .id = "user1" },
      .payload_at = 2, .ext_at = 3, .type = 8 },
    /* [9, ["user1", "user2"], PAYLOADS, {1: 1234}] */
    { NEW, "MultiUserDataWithTracingId",
      "lAmSpXVzZXIxpXVzZXIygqRqc29uxAcGBwECAwQFq21lc3NhZ2VwYWNrxAcH"
      "AQIDBAUGgQHNBNI=",
      .enc = DATA, .data = { .type = SIGNALR_SP_MULTI_USER_DATA,
      .list = L_USER12, .count = 2 }, .payload_at = 2, .ext_at = 3, .type = 9
      },
    /* [10, [], PAYLOADS, {1: 1234}] */
    { NEW, "BroadcastWithTracingId",
      "lAqQgqRqc29uxAcEBQYHAQIDq21lc3NhZ2VwYWNrxAcFBgcBAgMEgQHNBNI=",
      .enc = DATA, .data = { .type = SIGNALR_SP_BROADCAST }, .payload_at = 2,
      .ext_at = 3, .type = 10 },
    /* [11, "conn10", "group1", {1: 1234}] */
    { NEW, "JoinGroupWithTracingId",
      "lAumY29ubjEwpmdyb3VwMYEBzQTS",
      .why = "type 11: we join with an ack (18)", .type = 11 },
    /* [12, "conn11", "group2", {1: 1234}] */
    { NEW, "LeaveGroupWithTracingId",
      "lAymY29ubjExpmdyb3VwMoEBzQTS",
      .why = "type 12: we leave with an ack (19)", .type = 12 },
    /* [16, "conn10", "group1", {1: 1234}] */
    { NEW, "UserJoinGroupWithTracingId",
      "lBCmY29ubjEwpmdyb3VwMYEBzQTS",
      .why = "type 16: we join with an ack (26)", .type = 16 },
    /* [17, "conn11", "group2", {1: 1234}] */
    { NEW, "UserLeaveGroupWithTracingId",
      "lBGmY29ubjExpmdyb3VwMoEBzQTS",
      .why = "type 17: we leave with an ack (27)", .type = 17 },
    /* [14, ["group4", "group5"], PAYLOADS8, {1: 1234}] */
    { NEW, "MultiGroupBroadcastWithTracingId",
      "lA6Spmdyb3VwNKZncm91cDWCpGpzb27ECAECAwQFBgcIq21lc3NhZ2VwYWNr"
      "xAgHCAECAwQFBoEBzQTS",
      .enc = DATA, .data = { .type = SIGNALR_SP_MULTI_GROUP_BROADCAST,
      .list = L_GROUP45, .count = 2 }, .payload_at = 2, .ext_at = 3, .type = 14
      },
    /* [18, "conn14", "group1", 1, {1: 1234}] */
    { NEW, "JoinGroupWithAckWithTracingId",
      "lRKmY29ubjE0pmdyb3VwMQGBAc0E0g==",
      .enc = OP, .op = { .type = SIGNALR_SP_JOIN_GROUP_WITH_ACK,
      .id = "conn14", .group = "group1", .ack_id = 1 }, .ext_at = 4, .type = 18
      },
    /* [19, "conn15", "group2", 1, {1: 1234}] */
    { NEW, "LeaveGroupWithAckWithTracingId",
      "lROmY29ubjE1pmdyb3VwMgGBAc0E0g==",
      .enc = OP, .op = { .type = SIGNALR_SP_LEAVE_GROUP_WITH_ACK,
      .id = "conn15", .group = "group2", .ack_id = 1 }, .ext_at = 4, .type = 19
      },
    /* [26, "conn14", "group1", 1, {1: 1234, 2: 666}] */
    { NEW, "UserJoinGroupWithAckWithTracingId",
      "lRqmY29ubjE0pmdyb3VwMQGCAc0E0gLNApo=",
      .enc = OP, .op = { .type = SIGNALR_SP_USER_JOIN_GROUP_WITH_ACK,
      .id = "conn14", .group = "group1", .ack_id = 1, .ttl = 666 },
      .ext_at = 4, .type = 26 },
    /* [27, "conn15", "group2", 1, {1: 1234}] */
    { NEW, "UserLeaveGroupWithAckWithTracingId",
      "lRumY29ubjE1pmdyb3VwMgGBAc0E0g==",
      .enc = OP, .op = { .type = SIGNALR_SP_USER_LEAVE_GROUP_WITH_ACK,
      .id = "conn15", .group = "group2", .ack_id = 1 }, .ext_at = 4, .type = 27
      },
    /* [21, "user", "group", 3, {1: 1234}] */
    { NEW, "CheckUserInGroupWithAckWithMessage",
      "lRWkdXNlcqVncm91cAOBAc0E0g==",
      .enc = OP, .op = { .type = SIGNALR_SP_CHECK_USER_IN_GROUP, .id = "user",
      .group = "group", .ack_id = 3 }, .ext_at = 4, .type = 21 },
    /* [22, 2 (User), "abc", 2 (NotExisted), "User abc is not existed.", {}] */
    { NEW, "ServiceWarningMessage",
      "lhYCo2FiYwK4VXNlciBhYmMgaXMgbm90IGV4aXN0ZWQugA==",
      .why = SERVICE, .type = 22, .num = { 2, 2 }, .str = { "abc",
      "User abc is not existed." } },
    /* [23, "group", 0, {1: 3}] */
    { NEW, "CheckGroupExistenceWithAckMessage",
      "lBelZ3JvdXAAgQED",
      .enc = OP, .op = { .type = SIGNALR_SP_CHECK_GROUP_EXISTENCE,
      .id = "group", .ack_id = 0 }, .ext_at = 3, .type = 23 },
    /* [24, "connId", 1, {1: 2}] */
    { NEW, "CheckConnectionExistenceWithAckMessage",
      "lBimY29ubklkAYEBAg==",
      .enc = OP, .op = { .type = SIGNALR_SP_CHECK_CONNECTION_EXISTENCE,
      .id = "connId", .ack_id = 1 }, .ext_at = 3, .type = 24 },
    /* [25, "uid", 4, {1: 23}] */
    { NEW, "CheckUserExistenceWithAckMessage",
      "lBmjdWlkBIEBFw==",
      .enc = OP, .op = { .type = SIGNALR_SP_CHECK_USER_EXISTENCE, .id = "uid",
      .ack_id = 4 }, .ext_at = 3, .type = 25 },
    /* [30, "conn1", nil, 1, {}] */
    { NEW, "CloseConnectionWithAckMessage",
      "lR6lY29ubjHAAYA=",
      .why = "type 30 (obsolete; we close with 5)", .type = 30 },
    /* [30, "conn1", "detail", 1, {1: 1}] */
    { NEW, "CloseConnectionWithAckMessage_WithOptional",
      "lR6lY29ubjGmZGV0YWlsAYEBAQ==",
      .why = "type 30 (obsolete; we close with 5)", .type = 30 },
    /* [31, nil, 1, [], {}] */
    { NEW, "CloseConnectionsWithAckMessage",
      "lR/AAZCA",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_CONNECTIONS, .ack_id = 1 },
      .type = 31 },
    /* [31, nil, 1, ["connId"], {1: 1}] */
    { NEW, "CloseConnectionsWithAckMessage_WithOptional",
      "lR/AAZGmY29ubklkgQEB",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_CONNECTIONS, .ack_id = 1,
      .list = L_CONNID, .count = 1 }, .ext_at = 4, .type = 31 },
    /* [32, "user1", nil, 1, [], {}] */
    { NEW, "CloseUserConnectionsWithAckMessage",
      "liCldXNlcjHAAZCA",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_USER_CONNECTIONS,
      .id = "user1", .ack_id = 1 }, .type = 32 },
    /* [32, "conn1", "detail", 1, [], {1: 1}] */
    { NEW, "CloseUserConnectionsWithAckMessage_WithOptional",
      "liClY29ubjGmZGV0YWlsAZCBAQE=",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_USER_CONNECTIONS,
      .id = "conn1", .text = "detail", .ack_id = 1 }, .ext_at = 5, .type = 32
      },
    /* [33, "group1", nil, 1, [], {}] */
    { NEW, "CloseGroupConnectionsWithAckMessage",
      "liGmZ3JvdXAxwAGQgA==",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_GROUP_CONNECTIONS,
      .id = "group1", .ack_id = 1 }, .type = 33 },
    /* [33, "group1", "detail", 1, [], {1: 1}] */
    { NEW, "CloseGroupConnectionsWithAckMessage_WithOptional",
      "liGmZ3JvdXAxpmRldGFpbAGQgQEB",
      .enc = OP, .op = { .type = SIGNALR_SP_CLOSE_GROUP_CONNECTIONS,
      .id = "group1", .text = "detail", .ack_id = 1 }, .ext_at = 5, .type = 33
      },
    /* [34, "invocationId", "conn1", "server1", PAYLOADS, {}] */
    { NEW, "ClientInvocationMessage",
      "liKsaW52b2NhdGlvbklkpWNvbm4xp3NlcnZlcjGCpGpzb27EBwIDBAUGBwGr"
      "bWVzc2FnZXBhY2vEBwMEBQYHAQKA",
      .why = "client results (34)", .type = 34 },
    /* [35, "invocationId", "conn1", "server1", "json", bin, {3: "json"}] */
    { NEW, "ClientCompletionMessage",
      "lyOsaW52b2NhdGlvbklkpWNvbm4xp3NlcnZlcjGkanNvbsQHAgMEBQYHAYED"
      "pGpzb24=",
      .why = "client results (35)", .type = 35 },
    /* [36, "invocationId", "conn1", "server1", "invocation failed.", {}] */
    { NEW, "ErrorCompletionMessage",
      "liSsaW52b2NhdGlvbklkpWNvbm4xp3NlcnZlcjGyaW52b2NhdGlvbiBmYWls"
      "ZWQugA==",
      .why = "client results (36)", .type = 36 },
    /* [37, "invocationId", "conn1", "instance1", {}] */
    { NEW, "ServiceMappingMessage",
      "lSWsaW52b2NhdGlvbklkpWNvbm4xqWluc3RhbmNlMYA=",
      .why = "client results (37)", .type = 37 },
};

#define NVEC (sizeof VECTORS / sizeof VECTORS[0])

static int verbose;

/* ===== helpers ===== */

/* Standard base64 with padding (RFC 4648 section 4) into out; the
 * decoded length, or (size_t)-1 on a character outside the alphabet. */
static size_t b64_decode(const char *s, unsigned char *out)
{
    static const char A[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned long acc = 0;
    size_t n = 0;
    int bits = 0;

    for (; *s && *s != '='; s++) {
        const char *c = strchr(A, *s);
        if (!c)
            return (size_t)-1;
        acc = (acc << 6) | (unsigned long)(c - A);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

static char hexbuf[2][2048];

static const char *hex(int k, const unsigned char *p, size_t n)
{
    size_t i;

    hexbuf[k][0] = '\0';
    for (i = 0; i < n && 3 * i + 3 < sizeof hexbuf[k]; i++)
        snprintf(hexbuf[k] + 3 * i, 4, i + 1 < n ? "%02x " : "%02x", p[i]);
    return hexbuf[k];
}

/* A frame: the varint length (7 bits a byte, least significant first)
 * and the body; malloc'd to its exact size so valgrind sees any read
 * past it. */
static unsigned char *frame(const unsigned char *body, size_t n,
                            size_t *out_len)
{
    unsigned char *f = malloc(n + 5);
    size_t k = 0, v = n;

    do {
        f[k] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            f[k] |= 0x80;
        k++;
    } while (v);
    memcpy(f + k, body, n);
    *out_len = k + n;
    return f;
}

static uint32_t be(const unsigned char *p, int bytes)
{
    uint32_t v = 0;

    while (bytes--)
        v = (v << 8) | *p++;
    return v;
}

/* Pass over one MessagePack value at b[*i] (the kinds the vectors use,
 * any width): 0, or -1 when it is malformed or runs out. */
static int mp_skip(const unsigned char *b, size_t n, size_t *i, int depth)
{
    unsigned char c;
    size_t len = 0, items = 0, k;
    int w = 0;

    if (*i >= n || depth > 16)
        return -1;
    c = b[(*i)++];
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if (c >= 0xa0 && c <= 0xbf) {
        len = c & 0x1f;
    } else if (c >= 0x80 && c <= 0x8f) {
        items = 2 * (size_t)(c & 0x0f);
    } else if (c >= 0x90 && c <= 0x9f) {
        items = c & 0x0f;
    } else {
        switch (c) {
        case 0xcc: case 0xd0: len = 1; break;
        case 0xcd: case 0xd1: len = 2; break;
        case 0xce: case 0xd2: case 0xca: len = 4; break;
        case 0xcf: case 0xd3: case 0xcb: len = 8; break;
        case 0xc4: case 0xd9: w = 1; break;
        case 0xc5: case 0xda: case 0xdc: case 0xde: w = 2; break;
        case 0xc6: case 0xdb: case 0xdd: case 0xdf: w = 4; break;
        default: return -1;
        }
        if (w) {
            if (n - *i < (size_t)w)
                return -1;
            len = be(b + *i, w);
            *i += (size_t)w;
            if (c == 0xdc || c == 0xdd || c == 0xde || c == 0xdf) {
                items = (c == 0xde || c == 0xdf) ? 2 * len : len;
                len = 0;
            }
        }
    }
    if (n - *i < len)
        return -1;
    *i += len;
    for (k = 0; k < items; k++)
        if (mp_skip(b, n, i, depth + 1))
            return -1;
    return 0;
}

#define MAX_ITEMS 8

/* The items of a message body (a fixarray): at[k] where item k starts,
 * at[count] where the last ends (it must be the body's end); the count,
 * or -1. */
static int items(const unsigned char *b, size_t n, size_t *at)
{
    size_t i = 1, k, count;

    if (!n || (b[0] & 0xf0) != 0x90 || (b[0] & 0x0f) > MAX_ITEMS)
        return -1;
    count = b[0] & 0x0f;
    for (k = 0; k < count; k++) {
        at[k] = i;
        if (mp_skip(b, n, &i, 0))
            return -1;
    }
    at[count] = i;
    return i == n ? (int)count : -1;
}

/* Append the fixmap m[0..n) to out without its pair whose key is 1 (the
 * tracing id); 1 when there was one, 0 when not, -1 when malformed. */
static int drop_tracing(const unsigned char *m, size_t n,
                        unsigned char *out, size_t *olen)
{
    size_t i = 1, pairs, k, head = *olen;
    int found = 0;

    if (!n || (m[0] & 0xf0) != 0x80)
        return -1;
    pairs = m[0] & 0x0f;
    out[(*olen)++] = m[0];
    for (k = 0; k < pairs; k++) {
        size_t start = i;
        int tracing = m[i] == 0x01;
        if (mp_skip(m, n, &i, 0) || mp_skip(m, n, &i, 0))
            return -1;
        if (tracing) {
            found = 1;
            continue;
        }
        memcpy(out + *olen, m + start, i - start);
        *olen += i - start;
    }
    if (found)
        out[head]--;
    return found;
}

/* Two payloads maps with the same protocol names in the same order, and
 * bin values. */
static int same_protocols(const unsigned char *a, size_t an,
                          const unsigned char *b, size_t bn)
{
    size_t i = 1, j = 1, k, pairs;

    if (!an || !bn || a[0] != b[0] || (a[0] & 0xf0) != 0x80)
        return 0;
    pairs = a[0] & 0x0f;
    for (k = 0; k < pairs; k++) {
        size_t ai = i, bj = j;
        if (mp_skip(a, an, &i, 0) || mp_skip(b, bn, &j, 0) ||
            i - ai != j - bj || memcmp(a + ai, b + bj, i - ai))
            return 0;
        if (i >= an || j >= bn || a[i] < 0xc4 || a[i] > 0xc6 ||
            b[j] < 0xc4 || b[j] > 0xc6)
            return 0;
        if (mp_skip(a, an, &i, 0) || mp_skip(b, bn, &j, 0))
            return 0;
    }
    return 1;
}

/* A map of a decoded message as "name=value\n" pairs ("name\n" for a
 * header without values); "(malformed)" when the cursor says so. */
static const char *pairs_text(const char *map, size_t len, char *buf,
                              size_t size)
{
    signalr_sp_pairs it;
    const char *k, *val;
    size_t kl, vl, n = 0;
    int got;

    buf[0] = '\0';
    signalr_sp_pairs_init(&it, map, len);
    while ((got = signalr_sp_pairs_next(&it, &k, &kl, &val, &vl)) == 1) {
        if (val)
            n += (size_t)snprintf(buf + n, size - n, "%.*s=%.*s\n",
                                  (int)kl, k, (int)vl, val);
        else
            n += (size_t)snprintf(buf + n, size - n, "%.*s\n", (int)kl, k);
        if (n >= size)
            return "(too long)";
    }
    return got < 0 ? "(malformed)" : buf;
}

/* ===== writing ===== */

/* Our frame for the message of v through the public API (owned,
 * signalr_free), or NULL with the error in *rc. */
static char *write_ours(const vector *v, size_t *n, signalr_err *rc)
{
    char *out = NULL;
    signalr_error e;
    signalr_sp_data d;

    switch (v->enc) {
    case HANDSHAKE:
        *rc = signalr_sp_encode_handshake(v->conn_type, &out, n, &e);
        break;
    case PING:
        *rc = signalr_sp_encode_ping(v->kv, v->nkv, &out, n, &e);
        break;
    case OP:
        *rc = signalr_sp_encode_op(&v->op, &out, n, &e);
        break;
    case DATA:
        d = v->data;
        d.target = "t";
        d.protocols = SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK;
        *rc = signalr_sp_encode_data(&d, &out, n, &e);
        break;
    case CDATA:
        *rc = signalr_sp_encode_connection_data(v->cd_id, v->cd_payload,
                                                strlen(v->cd_payload), 0,
                                                &out, n, &e);
        break;
    default:
        *rc = SIGNALR_EINVAL;
        break;
    }
    if (*rc != SIGNALR_OK)
        fprintf(stderr, "%s: %s\n", v->name, e.msg);
    return out;
}

static int n_exact, n_but_tracing, n_but_payload, n_read_only, n_read;

/* Compare our frame for v with the official body (see the top). */
static void check_write(const vector *v, const unsigned char *body,
                        size_t blen, const char *what)
{
    unsigned char want[1024];
    size_t wlen = 0, n = 0, flen, oat[MAX_ITEMS + 1], wat[MAX_ITEMS + 1];
    size_t k, prefix;
    int count, ocount;
    signalr_err rc;
    char *ours = write_ours(v, &n, &rc);
    unsigned char *f;

    CHECK(rc == SIGNALR_OK && ours, what);
    if (!ours)
        return;
    count = items(body, blen, wat);
    CHECK(count > 0, "the official body's items");
    /* our body: past our frame's length prefix */
    for (prefix = 0; prefix < n && ((unsigned char)ours[prefix] & 0x80);)
        prefix++;
    prefix++;
    ocount = items((const unsigned char *)ours + prefix, n - prefix, oat);
    CHECK(ocount == count, what);
    if (count <= 0 || ocount != count) {
        signalr_free(ours);
        return;
    }
    want[wlen++] = body[0];
    for (k = 0; k < (size_t)count; k++) {
        const unsigned char *item = body + wat[k];
        size_t len = wat[k + 1] - wat[k];
        if (v->payload_at && k == (size_t)v->payload_at) {
            const unsigned char *mine =
                (const unsigned char *)ours + prefix + oat[k];
            size_t mlen = oat[k + 1] - oat[k];
            CHECK(same_protocols(mine, mlen, item, len), what);
            memcpy(want + wlen, mine, mlen);
            wlen += mlen;
        } else if (v->ext_at && k == (size_t)v->ext_at) {
            CHECK(drop_tracing(item, len, want, &wlen) == 1, what);
        } else {
            memcpy(want + wlen, item, len);
            wlen += len;
        }
    }
    f = frame(want, wlen, &flen);
    if (flen == n && !memcmp(f, ours, n)) {
        t_pass++;
        if (v->payload_at)
            n_but_payload++;
        else if (v->ext_at)
            n_but_tracing++;
        else
            n_exact++;
    } else {
        t_fail++;
        fprintf(stderr, "FAIL %s\n  ours: %s\n  want: %s\n", what,
                hex(0, (const unsigned char *)ours, n), hex(1, f, flen));
    }
    free(f);
    signalr_free(ours);
}

/* ===== reading ===== */

static void check_read(const vector *v, const unsigned char *body,
                       size_t blen, const char *what)
{
    size_t flen, used = 1, cut, k;
    unsigned char *f = frame(body, blen, &flen);
    signalr_sp_message m;
    signalr_error e;
    char buf[1024];
    int ok;

    /* every prefix of the frame: not complete yet */
    ok = 1;
    for (cut = 0; cut < flen; cut++) {
        char *part = malloc(cut ? cut : 1);
        memcpy(part, f, cut);
        if (signalr_sp_next(part, cut, 0, &m, &used, &e) != 0 || used)
            ok = 0;
        free(part);
    }
    CHECK(ok, what);

    ok = signalr_sp_next((const char *)f, flen, 0, &m, &used, &e) == 1 &&
         used == flen;
    CHECK(ok, what);
    if (!ok) {
        fprintf(stderr, "  %s: %s\n", what, e.msg);
        free(f);
        return;
    }
    n_read++;
    CHECK(m.type == v->type, what);
    CHECK(m.num[0] == v->num[0] && m.num[1] == v->num[1], what);
    for (k = 0; k < 4; k++) {
        if (!v->str[k]) {
            CHECK(!m.str[k], what);
            continue;
        }
        ok = m.str[k] && m.len[k] == strlen(v->str[k]) &&
             !memcmp(m.str[k], v->str[k], m.len[k]);
        CHECK(ok, what);
        if (!ok)
            fprintf(stderr, "  str[%zu]: %.*s\n", k, (int)m.len[k],
                    m.str[k] ? m.str[k] : "(null)");
    }
    for (k = 0; k < 2; k++) {
        if (!v->map[k])
            CHECK(!m.map[k], what);
        else
            CHECK_STR(pairs_text(m.map[k], m.map_len[k], buf, sizeof buf),
                      v->map[k], what);
    }
    buf[0] = '\0';
    for (k = 0, used = 0; k < m.nping; k++)
        used += (size_t)snprintf(buf + used, sizeof buf - used,
                                 "%.*s=%.*s\n", (int)m.ping_len[2 * k],
                                 m.ping[2 * k], (int)m.ping_len[2 * k + 1],
                                 m.ping[2 * k + 1]);
    CHECK_STR(buf, v->ping ? v->ping : "", what);
    free(f);
}

int main(int argc, char **argv)
{
    size_t i, n_old = 0;

    verbose = argc > 1 && !strcmp(argv[1], "-v");
    for (i = 0; i < NVEC; i++) {
        const vector *v = &VECTORS[i];
        unsigned char body[1024];
        char what[160];
        size_t blen = b64_decode(v->b64, body);

        snprintf(what, sizeof what, "%s/%s", v->set == OLD ? "old" : "new",
                 v->name);
        CHECK(blen != (size_t)-1 && blen > 0, what);
        if (blen == (size_t)-1)
            continue;
        n_old += v->set == OLD;
        /* an old form is never what the official writer writes */
        CHECK(v->set == NEW || v->enc == READ_ONLY, what);
        CHECK(v->enc != READ_ONLY || v->set == OLD || v->why, what);
        if (v->enc != READ_ONLY) {
            check_write(v, body, blen, what);
        } else {
            n_read_only++;
            if (verbose && v->set == NEW)
                printf("read only: %s (%s)\n", v->name, v->why);
        }
        check_read(v, body, blen, what);
    }
    printf("official vectors: %zu (%zu old forms, %zu current); written "
           "byte for byte: %d, but for the tracing id: %d, but for the "
           "payload bytes: %d; read only: %d; read: %d\n", NVEC, n_old,
           NVEC - n_old, n_exact, n_but_tracing, n_but_payload, n_read_only,
           n_read);
    return t_done("test_sp_official");
}
