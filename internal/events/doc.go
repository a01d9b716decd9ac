// Package events owns what happens to the activity log besides writing
// it (the store writes events with their state changes, in the same
// transaction, and keeps the report rollups there too):
//
//   - Broadcaster fans committed events out to live followers (the
//     SSE streams of the public and admin APIs). The store calls Publish
//     after each commit; a follower that falls behind is cut loose
//     (its channel closed, Lagged set) rather than slowing the writer,
//     and catches up from the store by event ID before following again.
//   - Pruner is the retention service: it deletes events older than
//     events_retention and drops the bodies of finished messages older
//     than body_retention, in small batches through the store's writer
//     with pauses between them, so acceptance never waits long behind it.
//
// Tests: broadcaster_test.go (fan-out, filtering, lag), retention_test.go
// (old events and bodies go, new ones and pending messages stay), and the
// end-to-end tests in internal/e2e/events_test.go.
package events
