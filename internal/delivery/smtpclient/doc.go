// Package smtpclient is the thin, fast SMTP client posthorn's delivery
// workers use to hand a message to a recipient's MX host.
//
// A Client wraps one net.Conn. New reads the greeting, Hello sends EHLO
// (falling back to HELO), StartTLS and Auth are optional, and Send runs one
// mail transaction: MAIL FROM, one RCPT TO per recipient, DATA and the
// message body. A Client can carry many transactions; Send issues RSET by
// itself when the previous transaction was left open, and Reset does so on
// request.
//
// When the server advertises PIPELINING (RFC 2920), Send writes MAIL, all
// RCPT commands and DATA with a single flush and then reads the replies in
// order, so a message costs two round trips (envelope, body) instead of
// N+3. Very long recipient lists are pipelined in windows of
// PipelineWindow commands so that neither side can deadlock on full
// socket buffers. Without PIPELINING the commands are sent in lock-step.
//
// Every reply is reported: Result holds the MAIL reply, one reply per
// recipient (in the order given) and the final reply to the message, so
// the caller can record per-recipient outcomes with their enhanced status
// codes. Failures come back as *Error, which names the Phase of the
// transaction, carries the server's Reply (or the I/O cause in Err) and
// says whether the failure is Temporary, and whether the message, sent in
// full, may have been delivered although no reply said so
// (MaybeDelivered).
//
// The client is defensive against hostile or broken servers: every read
// and write has a deadline, replies are bounded in line length and line
// count, malformed replies become a *ProtocolError instead of a panic, and
// control characters and invalid UTF-8 in reply texts are replaced. After
// an I/O error, a protocol error or a 421 reply the Client is Broken and
// refuses further commands; the caller should Close it and reconnect.
//
// The message body given to Send must be the complete message (header and
// body) with CRLF line endings. Send dot-stuffs it while streaming it
// through a 32 KiB buffer, turns any bare LF or bare CR into CRLF (so no
// "smuggled" end-of-data sequence can reach the server) and appends the
// terminating "<CRLF>.<CRLF>".
//
// Options.Context bounds a whole session: when it ends, the connection is
// closed, so a command waiting for its (possibly minutes-long) timeout
// fails at once, and the Client is Broken.
//
// A Client is not safe for concurrent use by multiple goroutines.
package smtpclient
