package smtpclient

import (
	"bufio"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

const (
	// MaxReplyLineLength is the longest reply line the client accepts,
	// including the line ending. RFC 5321 allows 512; real servers
	// sometimes send more.
	MaxReplyLineLength = 4096
	// MaxReplyLines is the largest number of lines in one reply.
	MaxReplyLines = 100
)

// readReply reads one (possibly multi-line) reply from br, which must have
// a buffer of MaxReplyLineLength bytes: a line that does not fit is a
// protocol error. lines is scratch space that is returned for reuse.
//
// Line endings may be CRLF or a bare LF. Every line must start with the
// same three-digit code, class 2 to 5, followed by "-" (more lines follow),
// " " or the end of the line (last line). Reply texts are cleaned of
// control characters and invalid UTF-8 (see cleanLine).
//
// The error is an I/O error from br (io.ErrUnexpectedEOF when the stream
// ends inside a reply) or a *ProtocolError.
func readReply(br *bufio.Reader, lines []string) (smtpproto.Reply, []string, error) {
	lines = lines[:0]
	var code [3]byte
	for {
		raw, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return smtpproto.Reply{}, lines, protoErr("reply line too long", raw)
			}
			if err == io.EOF && (len(raw) > 0 || len(lines) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return smtpproto.Reply{}, lines, err
		}
		line := raw[:len(raw)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
			return smtpproto.Reply{}, lines, protoErr("malformed reply line", line)
		}
		if len(lines) == 0 {
			copy(code[:], line[:3])
		} else if line[0] != code[0] || line[1] != code[1] || line[2] != code[2] {
			return smtpproto.Reply{}, lines, protoErr("reply code changed within a multi-line reply", line)
		}
		final := true
		if len(line) > 3 {
			switch line[3] {
			case ' ':
			case '-':
				final = false
			default:
				return smtpproto.Reply{}, lines, protoErr("bad separator after reply code", line)
			}
		}
		if len(lines) == MaxReplyLines {
			return smtpproto.Reply{}, lines, protoErr("too many lines in reply", nil)
		}
		lines = append(lines, cleanLine(line))
		if final {
			break
		}
	}
	r, err := smtpproto.ParseReplyLines(lines)
	if err != nil {
		return smtpproto.Reply{}, lines, &ProtocolError{Msg: err.Error()}
	}
	return r, lines, nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// cleanLine converts a reply line to a string, replacing control
// characters (C0 other than TAB, DEL, C1) with '?' and invalid UTF-8 with
// U+FFFD, so that reply texts are safe to log and to quote in bounce
// messages.
func cleanLine(line []byte) string {
	clean := true
	for _, b := range line {
		if b < 0x20 && b != '\t' || b >= 0x7f {
			clean = false
			break
		}
	}
	if clean || (utf8.Valid(line) && !hasControl(line)) {
		return string(line)
	}
	out := make([]byte, 0, len(line)+8)
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRune(line[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			out = utf8.AppendRune(out, utf8.RuneError)
		case isControl(r):
			out = append(out, '?')
		default:
			out = append(out, line[i:i+size]...)
		}
		i += size
	}
	return string(out)
}

func isControl(r rune) bool {
	return r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0
}

func hasControl(line []byte) bool {
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRune(line[i:])
		if isControl(r) {
			return true
		}
		i += size
	}
	return false
}
