// Package smtpscript runs third-party SMTP conformance scenarios black-box
// against an SMTP server listening on host:port.
//
// Two scenario formats are supported:
//
//   - OpenSMTPD's historical regress language "smtpscript" (the *.scr files
//     of the smtp-conformance data set in testdata/, see [ConformanceDir]). [ParseFile] turns a file
//     into a [Script]; [Script.Run] executes every test-case, each on its own
//     TCP connection unless the case says no-autoconnect.
//   - aiosmtpd's command/reply-code dialogues (dialogues.json).
//     [LoadDialogues] reads them and [RunDialogue] plays one of them.
//
// Both produce [CaseResult] values; [Summary] renders them as a table, and
// [LoadExpectations] / [Compare] check them against a calibration file.
//
// # The smtpscript language
//
// A script is a sequence of procedures and test cases:
//
//	proc NAME [%param ...] { statements }
//	test-case [name "x"] [no-autoconnect] [expect fail] [skip] { statements }
//
// Statements are separated by newlines; '#' starts a comment. Statements:
//
//	{ ... }                  nested block
//	repeat N statement       run statement N times
//	random { ... }           run one statement of the block, chosen at random
//	call NAME                run a procedure (it must exist; no recursion)
//	noop
//	sleep N [ms|s|m|h]       pause (default unit: milliseconds)
//	fail "reason"            fail the case
//	connect "host" [port P]  (re)connect; always dials Target.Addr (see below)
//	disconnect               close the connection
//	starttls                 TLS handshake on the current connection
//	write "X"                send X as is
//	writeln "X"              send X + CRLF
//	expect disconnect        the server must close the connection
//	expect smtp              any reply (multiline allowed)
//	expect smtp ok           2xx/3xx, single line
//	expect smtp helo         2xx/3xx, multiline allowed
//	expect smtp tempfail     4xx, single line
//	expect smtp permfail     5xx, single line
//
// Quoted strings use ' or "; a backslash escapes the quote character and a
// backslash-newline joins lines. Unlike the original OpenSMTPD lexer (which
// silently dropped them), raw newlines inside a quoted string are kept and
// therefore sent as bare LF: test.smtp0 relies on this on purpose.
//
// The scripts were written for a server on localhost:25, so the host and
// port of a "connect" statement are recorded in the transcript but the
// connection always goes to [Target].Addr, the server under test.
//
// Variables ("$x", "x = y") and "include" from the original grammar are not
// used by any scenario and are rejected with a parse error.
package smtpscript
