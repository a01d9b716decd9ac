package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// PipelineWindow is the largest number of commands Send writes before
// reading their replies when the server supports PIPELINING. Recipient
// lists up to PipelineWindow-2 long go out in a single flush together with
// MAIL and DATA.
const PipelineWindow = 100

// SendOptions select the MAIL FROM parameters of a transaction.
type SendOptions struct {
	// SMTPUTF8 marks a message whose envelope or header needs SMTPUTF8
	// (RFC 6531). If the server does not offer it, Send fails with a
	// permanent *Error (PhaseMail, Err wrapping ErrNotSupported) without
	// sending anything.
	SMTPUTF8 bool
	// EightBit marks an 8-bit body: BODY=8BITMIME is added when the
	// server offers 8BITMIME (otherwise the body is sent as is).
	EightBit bool
	// Size adds SIZE=<len(body)> when the server offers SIZE (RFC 1870).
	Size bool
	// RequireTLS is reserved for RFC 8689 and currently ignored.
	RequireTLS bool
}

// Result holds every reply of one transaction.
type Result struct {
	// Mail is the reply to MAIL FROM.
	Mail smtpproto.Reply
	// Rcpt holds one reply per recipient, in the order given to Send. A
	// zero Reply means the RCPT command was never sent or answered.
	Rcpt []smtpproto.Reply
	// Data is the reply after the message body, or the reply to the DATA
	// command when it was not 354. Zero if DATA was never answered.
	Data smtpproto.Reply
	// Accepted lists the indexes of recipients whose RCPT got 2xx.
	Accepted []int
}

// Delivered reports whether the message was accepted for the recipients
// in Accepted (the final reply is 2xx).
func (r *Result) Delivered() bool { return r.Data.Code/100 == 2 && len(r.Accepted) > 0 }

// Send runs one mail transaction: MAIL FROM:<from>, RCPT TO for each of
// rcpts, DATA and body. from and rcpts are addresses without angle
// brackets; an empty from is the null reverse path <>. body is the whole
// message with CRLF line endings; see the package documentation for how
// it is transmitted.
//
// Send always returns a non-nil *Result with every reply received. The
// error is nil only when at least one recipient was accepted and the
// message was accepted after the body; recipients that were refused are
// then visible in Result.Rcpt and missing from Result.Accepted. Otherwise
// the *Error names the phase that failed:
//
//   - PhaseMail: MAIL FROM was refused (Reply), or SMTPUTF8 is needed but
//     not offered, or from cannot be sent (ErrInvalidArgument).
//   - PhaseRcpt: no recipient was accepted; Reply is the first refusal
//     and Temporary follows it (look at Result.Rcpt for the others).
//   - PhaseData: the DATA command was refused.
//   - PhaseDataEnd: the message was refused after the body, or the
//     connection failed while sending it or waiting for the reply.
//
// With PIPELINING, replies to commands already sent are always read, and
// if a server answers 354 to DATA although the transaction failed, the
// empty message is terminated with "." as RFC 2920 requires, so the
// session stays in sync and can carry the next transaction. If a previous
// transaction was left open (e.g. DATA was refused), Send issues RSET
// first.
func (c *Client) Send(from string, rcpts []string, body []byte, opts SendOptions) (*Result, error) {
	res := &Result{Rcpt: make([]smtpproto.Reply, len(rcpts))}
	if err := c.usable(PhaseMail); err != nil {
		return res, err
	}
	if !validPath(from) {
		return res, localError(PhaseMail, fmt.Errorf("%w: sender %q", ErrInvalidArgument, from))
	}
	if len(rcpts) == 0 {
		return res, localError(PhaseRcpt, fmt.Errorf("%w: no recipients", ErrInvalidArgument))
	}
	for _, r := range rcpts {
		if r == "" || !validPath(r) {
			return res, localError(PhaseRcpt, fmt.Errorf("%w: recipient %q", ErrInvalidArgument, r))
		}
	}
	if err := c.ensureHello(); err != nil {
		return res, err
	}
	if opts.SMTPUTF8 && !c.smtpUTF8 {
		return res, localError(PhaseMail, fmt.Errorf("%w: message needs SMTPUTF8", ErrNotSupported))
	}
	if c.inTx {
		if err := c.Reset(); err != nil {
			return res, err
		}
	}

	// Commands are numbered 0 (MAIL), 1..n (RCPT), n+1 (DATA).
	n := len(rcpts)
	total, window := n+2, 1
	if c.pipelining {
		window = PipelineWindow
	}
	mailOK := false
	next := 0
	for next < total {
		if next > 0 && !mailOK {
			break // no RCPT after a refused MAIL (replies already sent are read)
		}
		if next == total-1 && len(res.Accepted) == 0 {
			break // no DATA without recipients
		}
		end := min(next+window, total)
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.CommandTimeout))
		for i := next; i < end; i++ {
			c.writeCommand(i, from, rcpts, len(body), opts)
		}
		if err := c.bw.Flush(); err != nil {
			return res, c.ioError(phaseOf(next, n), err)
		}
		for i := next; i < end; i++ {
			p := phaseOf(i, n)
			r, err := c.read(p, c.opts.CommandTimeout)
			if err != nil {
				return res, err
			}
			switch {
			case i == 0:
				res.Mail = r
				mailOK = r.Code/100 == 2
				c.inTx = mailOK
			case i <= n:
				res.Rcpt[i-1] = r
				if r.Code/100 == 2 {
					if res.Accepted == nil {
						res.Accepted = make([]int, 0, n)
					}
					res.Accepted = append(res.Accepted, i-1)
				}
			default:
				res.Data = r
			}
			if class := r.Code / 100; class == 3 && i <= n || class == 2 && i == n+1 {
				// 3xx to MAIL or RCPT, or 2xx to DATA.
				return res, c.outOfSequence(p, r)
			}
			if r.Code == 421 {
				// The server is closing the session; it will not answer
				// the remaining commands.
				return res, replyError(p, r)
			}
		}
		next = end
	}
	dataSent := next == total

	if !mailOK || len(res.Accepted) == 0 {
		if dataSent && res.Data.Code/100 == 3 {
			// A broken server accepted DATA for a failed transaction:
			// send the empty message's terminator to get back in sync.
			c.abortData(res)
		}
		if !mailOK {
			return res, replyError(PhaseMail, res.Mail)
		}
		for _, r := range res.Rcpt {
			if r.Code != 0 {
				return res, replyError(PhaseRcpt, r)
			}
		}
		return res, replyError(PhaseRcpt, res.Mail) // unreachable: n > 0
	}
	if res.Data.Code/100 != 3 {
		return res, replyError(PhaseData, res.Data)
	}

	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.DataTimeout))
	writeBody(c.bw, body)
	if err := c.bw.Flush(); err != nil {
		return res, c.ioError(PhaseDataEnd, err)
	}
	r, err := c.read(PhaseDataEnd, c.opts.DataTimeout)
	if err != nil {
		if e, ok := err.(*Error); ok && !errors.Is(err, syscall.ECONNRESET) {
			e.MaybeDelivered = true
		}
		return res, err
	}
	res.Data = r
	if r.Code/100 == 3 {
		e := c.outOfSequence(PhaseDataEnd, r)
		e.MaybeDelivered = true // the real reply to the dot may follow it
		return res, e
	}
	if r.Code/100 != 2 {
		// RFC 5321 §4.1.1.4 says the transaction is over either way;
		// an RSET before the next one costs little and guards against
		// servers that disagree.
		return res, replyError(PhaseDataEnd, r)
	}
	c.inTx = false
	return res, nil
}

// abortData terminates the DATA a server wrongly accepted with an empty
// body and records the reply in res.Data. Errors only mark the Client
// Broken; the caller reports the original failure.
func (c *Client) abortData(res *Result) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.CommandTimeout))
	c.bw.WriteString(".\r\n")
	if err := c.bw.Flush(); err != nil {
		c.ioError(PhaseDataEnd, err)
		return
	}
	if r, err := c.read(PhaseDataEnd, c.opts.CommandTimeout); err == nil {
		res.Data = r
		if r.Code/100 == 3 {
			c.outOfSequence(PhaseDataEnd, r)
		}
	}
}

func phaseOf(i, n int) Phase {
	switch {
	case i == 0:
		return PhaseMail
	case i <= n:
		return PhaseRcpt
	default:
		return PhaseData
	}
}

// writeCommand buffers command i of the transaction (see Send).
func (c *Client) writeCommand(i int, from string, rcpts []string, size int, opts SendOptions) {
	w := c.bw
	switch {
	case i == 0:
		w.WriteString("MAIL FROM:<")
		w.WriteString(from)
		w.WriteByte('>')
		if opts.Size && c.size {
			w.WriteString(" SIZE=")
			w.Write(strconv.AppendInt(c.scratch[:0], int64(size), 10))
		}
		if opts.EightBit && c.eightBitMIME {
			w.WriteString(" BODY=8BITMIME")
		}
		if opts.SMTPUTF8 {
			w.WriteString(" SMTPUTF8")
		}
	case i <= len(rcpts):
		w.WriteString("RCPT TO:<")
		w.WriteString(rcpts[i-1])
		w.WriteByte('>')
	default:
		w.WriteString("DATA")
	}
	w.WriteString("\r\n")
}

// writeBody writes body to w as DATA content: lines starting with "." get
// another "." (RFC 5321 §4.5.2), bare LF and bare CR become CRLF, a
// missing final line ending is added, and the end-of-data line "." is
// appended. Unchanged runs of the body are written with one Write each.
// Write errors are sticky in w and surface at Flush.
func writeBody(w *bufio.Writer, body []byte) {
	start := 0 // body[start:] has not been written yet
	i := 0     // always at the beginning of a line
	for i < len(body) {
		if body[i] == '.' {
			w.Write(body[start:i])
			w.WriteByte('.')
			start = i
		}
		rest := body[i:]
		nl := bytes.IndexByte(rest, '\n')
		content := len(rest) // end of the line's content within rest
		if nl >= 0 {
			content = nl
			if nl > 0 && rest[nl-1] == '\r' {
				content = nl - 1
			}
		}
		if cr := bytes.IndexByte(rest[:content], '\r'); cr >= 0 {
			// Bare CR: end the line here.
			w.Write(body[start : i+cr])
			w.WriteString("\r\n")
			i += cr + 1
			start = i
			continue
		}
		if nl < 0 {
			break
		}
		if content == nl {
			// Bare LF.
			w.Write(body[start : i+nl])
			w.WriteString("\r\n")
			start = i + nl + 1
		}
		i += nl + 1
	}
	w.Write(body[start:])
	if n := len(body); n > 0 && body[n-1] != '\n' && body[n-1] != '\r' {
		w.WriteString("\r\n")
	}
	w.WriteString(".\r\n")
}
