// Package api is what posthorn's two HTTP interfaces share: the request
// and response types on the wire (what the CLI's client and the tests
// decode), the JSON answer helpers (WriteJSON, WriteError, Decode,
// BadRequest, DomainError) and the parts both servers serve the same way
// (event pages, exports and streams; deliverability reports; queue
// listings and message details; suppression lists; webhook creation).
//
// The servers live in sub-packages:
//   - internal/api/v1: the public /v1 API on the HTTP listener (API keys,
//     one tenant per key), with its OpenAPI document;
//   - internal/api/admin: the admin API on the Unix socket (the operator,
//     every tenant; access is the socket's file permissions);
//   - internal/api/adminclient: the admin socket's client (the CLI).
//
// An operator command runs: the CLI (cmd/posthorn) → adminclient → the
// admin server's handler (internal/api/admin) → for queue commands, the
// queue operations (internal/queue/ops), which drive the scheduler.
package api
