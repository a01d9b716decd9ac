// Package admin serves the admin API on the Unix socket (/admin/v1/...),
// what the posthorn CLI talks to; access is the socket's file permissions
// and the operator sees every tenant. admin.go holds the route table and
// the error mapping (fail); each area has its own file (accounts.go,
// domains.go, webhooks.go, destinations.go, events.go, ...).
//
// Where an operator command is implemented: the CLI command in
// cmd/posthorn calls internal/api/adminclient, which requests a route
// listed in Server.Handler here; queue commands (flush, hold, release,
// delete, requeue, dlq retry/purge, why, summary, destinations) are
// carried out by internal/queue/ops. Wire types are in internal/api.
//
// internal/server mounts a few more routes on the same socket, for what
// needs the running server rather than its store: /admin/v1/ops/*
// (reload, status, backup; internal/server/ops.go), /admin/v1/abuse
// (internal/abuse/admin.go) and the reputation routes served by
// ReputationHandler (reputation.go).
package admin
