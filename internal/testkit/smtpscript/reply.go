package smtpscript

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxReplyLine is the longest reply line (without CRLF) ReadReply accepts,
// the same limit as the original interpreter.
const MaxReplyLine = 4096

// ErrMalformedReply is wrapped by ReadReply errors about reply syntax.
var ErrMalformedReply = errors.New("malformed SMTP reply")

// Reply is one complete SMTP reply.
type Reply struct {
	Code  int      // three-digit reply code
	Lines []string // raw lines without line ending, e.g. "250-SIZE 1000"
}

// Multiline reports whether the reply has continuation lines.
func (r Reply) Multiline() bool { return len(r.Lines) > 1 }

// String returns the lines joined with " | ".
func (r Reply) String() string { return strings.Join(r.Lines, " | ") }

// ReadReply reads one reply, following "NNN-" continuation lines until the
// final "NNN " (or bare "NNN") line. Lines may end in CRLF or LF. It
// returns an error wrapping io.EOF if the connection closes before the
// first byte, io.ErrUnexpectedEOF if it closes in the middle of a reply,
// and ErrMalformedReply for lines that are not SMTP replies. The lines read
// so far are returned along with any error.
func ReadReply(r *bufio.Reader) (Reply, error) {
	var rep Reply
	for {
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, io.EOF) && len(rep.Lines) > 0 {
				err = fmt.Errorf("connection closed inside a multiline reply: %w", io.ErrUnexpectedEOF)
			}
			return rep, err
		}
		rep.Lines = append(rep.Lines, line)
		code, cont, err := parseReplyLine(line)
		if err != nil {
			return rep, err
		}
		if len(rep.Lines) == 1 {
			rep.Code = code
		} else if code != rep.Code {
			return rep, fmt.Errorf("%w: code %d in continuation of a %d reply", ErrMalformedReply, code, rep.Code)
		}
		if !cont {
			return rep, nil
		}
	}
}

// readLine reads up to and including '\n' and strips the line ending.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > MaxReplyLine+2 {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrMalformedReply, MaxReplyLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return "", fmt.Errorf("connection closed after partial line %q: %w", buf, io.ErrUnexpectedEOF)
			}
			return "", err
		}
		break
	}
	s := strings.TrimSuffix(string(buf), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// parseReplyLine validates one reply line and reports its code and whether
// it is a continuation ("NNN-") line.
func parseReplyLine(line string) (code int, cont bool, err error) {
	if len(line) < 3 {
		return 0, false, fmt.Errorf("%w: line too short: %q", ErrMalformedReply, line)
	}
	if line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
		return 0, false, fmt.Errorf("%w: reply code out of range: %q", ErrMalformedReply, line)
	}
	if len(line) > 3 && line[3] != ' ' && line[3] != '-' {
		return 0, false, fmt.Errorf("%w: expected space or '-' after code: %q", ErrMalformedReply, line)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return 0, false, fmt.Errorf("%w: control character in reply: %q", ErrMalformedReply, line)
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	return code, len(line) > 3 && line[3] == '-', nil
}
