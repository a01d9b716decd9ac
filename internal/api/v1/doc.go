// Package v1 serves the public HTTP API under /v1 on the HTTP listener:
// API keys (Authorization: Bearer) or, for /v1/apikeys, an account's
// basic auth; every answer is scoped to the key's tenant. v1.go holds the
// route table (which openapi.json must match, see openapi_test.go), the
// authentication and the error answer (api.APIError); each resource has
// its own file (send.go, messages.go, dlq.go, events.go, ...). Request
// bodies are read under a shared byte budget (body.go).
//
// Wire types and the code /v1 shares with the admin socket are in
// internal/api; queue commands (cancel, DLQ retry and purge, why) call
// internal/queue/ops.
package v1
