// Package e2e holds posthorn's end-to-end tests: they build the posthorn
// binary, start it on loopback with a test DNS server and fake MX hosts
// from internal/testkit, submit mail over SMTP, and check what the MX hosts
// received and what posthorn's queue commands report. Nothing is mocked.
package e2e
