// Package testkit runs, on loopback, what posthorn talks to when it
// delivers mail: a DNS server with records set at run time, and scriptable
// fake MX SMTP servers that record what they receive. It is meant for
// integration tests and benchmarks; the core types do not need a
// *testing.T (NewDNS, NewMX, NewMXGroup return errors), while StartDNS,
// StartMX, StartMXGroup and FreePort take a testing.TB, fail it on error
// and register cleanups.
//
// # DNS
//
// A DNS serves UDP and TCP on one port. Names are case-insensitive, with
// or without the trailing dot. An unknown name gets NXDOMAIN, a known name
// without records of the asked type NOERROR with no answer (NODATA), both
// with an SOA in the authority section. SetRcode forces e.g. SERVFAIL,
// SetDelay slows a name down, Queries counts what was asked.
//
//	d := testkit.StartDNS(t)
//	d.SetMX("example.test", testkit.MX{Pref: 10, Host: "mx1.example.test"}, testkit.MX{Pref: 20, Host: "mx2.example.test"})
//	d.SetA("mx1.example.test", "127.0.0.2")
//	d.SetA("mx2.example.test", "127.0.0.3")
//	d.SetMX("null.test", testkit.MX{Pref: 0, Host: "."})        // null MX
//	d.SetRcode("broken.test", dns.TypeMX, dns.RcodeServerFailure) // SERVFAIL
//	// point posthorn's resolver at d.Addr()
//
// For DNSSEC and DANE: SetTLSA publishes TLSA records (TLSAFor computes
// one from a certificate), SetAD makes answers carry the AD bit like a
// validating resolver's (for queries with DO), and SetInsecure exempts a
// name. For certificates a test can verify: NewCA, CA.Issue (a leaf for
// the given names, chained to the CA), CA.Pool, CA.PEM and WriteCertPEM
// (a server's certificate and key files).
//
// # Fake MX servers
//
// An MXServer speaks the server side of SMTP (EHLO with PIPELINING,
// 8BITMIME, SMTPUTF8, SIZE, ENHANCEDSTATUSCODES, and optionally STARTTLS
// and AUTH PLAIN LOGIN), handles pipelined commands, and follows a Script
// whose zero value accepts everything. Any scripted Reply may be
// multi-line (Text with "\n"), may close the connection after being sent
// (Close), or may be replaced by hanging up (Code: CodeDrop). The script
// can be swapped while the server runs (SetScript).
//
// Every MX host of a test listens on the same port (posthorn uses one
// delivery port), on different 127.0.0.x addresses:
//
//	mxs := testkit.StartMXGroup(t, testkit.Script{
//		RcptReplies: map[string]testkit.Reply{
//			"nobody@example.test": {Code: 550, Text: "5.1.1 no such user"},
//		},
//		DataReplies: []testkit.Reply{{Code: 451, Text: "4.3.0 try again"}}, // first attempt deferred
//	}, "127.0.0.2", "127.0.0.3")
//	port := mxs[0].Port() // posthorn's delivery port
//	...
//	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//	defer cancel()
//	msgs, err := mxs[0].WaitMessages(ctx, 1)
//	// msgs[0].From, .To (accepted recipients), .Data (bytes after
//	// dot-unstuffing), .TLS, .AuthUser, .Conn, .Txn
//
// Other behaviours: stalls per phase (Script.Stall; a long EndOfData stall
// is "no reply after the final dot"), dropping the connection mid-DATA
// (DropDataAfter) or after any reply (Reply.Close), raw bytes instead of a
// reply (Reply.Raw: garbage, or a second unsolicited reply), 452 4.5.3 after
// MaxRcptsPerTxn recipients, a failing TLS handshake after STARTTLS
// (BreakTLS),
// a message rate limit across connections answered with 421 4.7.28
// (Script.RateLimit), a cap on simultaneous connections (MaxConns), and
// Stop/Start/Restart of the listener (connections are then refused).
// Recorded for assertions: Messages, Attempts (including rejected ones),
// Commands, Connections, ActiveConnections, MaxActiveConnections,
// Transactions, Resets.
package testkit
