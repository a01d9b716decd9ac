// Package smtpproto holds the small, dependency-free pieces of SMTP that
// every other package shares: the Reply type (code, enhanced status code,
// text) with its parser, and mailbox/path parsing for envelope addresses.
//
// It is a leaf package: it imports nothing from posthorn.
package smtpproto

import (
	"fmt"
	"strconv"
	"strings"
)

// Reply is one SMTP reply as a server sent it: the three-digit code, the
// RFC 3463 enhanced status code when the server gave one, and the text
// (continuation lines joined with "\n", without codes).
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced,omitempty"`
	Text     string `json:"text"`
}

// Positive reports a 2xx or 3xx reply.
func (r Reply) Positive() bool { return r.Code >= 200 && r.Code < 400 }

// Transient reports a 4xx reply.
func (r Reply) Transient() bool { return r.Code >= 400 && r.Code < 500 }

// Permanent reports a 5xx reply.
func (r Reply) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// String renders the reply on one line as it appeared on the wire, e.g.
// "550 5.1.1 user unknown". Multi-line texts are joined with " / ".
func (r Reply) String() string {
	text := strings.ReplaceAll(r.Text, "\n", " / ")
	if r.Enhanced != "" {
		return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, text)
	}
	return fmt.Sprintf("%d %s", r.Code, text)
}

// ParseReplyLines builds a Reply from the raw lines of one reply ("250-a",
// "250 b"). The enhanced code is taken from the first line when it is there
// and its class digit agrees with the reply code; it is stripped from every
// line's text.
func ParseReplyLines(lines []string) (Reply, error) {
	if len(lines) == 0 {
		return Reply{}, fmt.Errorf("smtp reply: empty")
	}
	var r Reply
	texts := make([]string, 0, len(lines))
	for i, line := range lines {
		code, text, err := splitReplyLine(line)
		if err != nil {
			return Reply{}, err
		}
		if i == 0 {
			r.Code = code
		} else if code != r.Code {
			return Reply{}, fmt.Errorf("smtp reply: code changed within a multi-line reply (%d then %d)", r.Code, code)
		}
		if enh, rest, ok := cutEnhanced(text, code); ok {
			if i == 0 {
				r.Enhanced = enh
			}
			if enh == r.Enhanced {
				text = rest
			}
		}
		texts = append(texts, text)
	}
	r.Text = strings.Join(texts, "\n")
	return r, nil
}

// ParseReply parses a reply written on one line, as an operator would type
// it ("421 4.7.28 slow down"), or several lines separated by "\n".
func ParseReply(s string) (Reply, error) {
	s = strings.TrimRight(s, "\r\n")
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	return ParseReplyLines(lines)
}

// splitReplyLine splits "250-text" or "250 text" or "250" into code and text.
func splitReplyLine(line string) (int, string, error) {
	if len(line) < 3 {
		return 0, "", fmt.Errorf("smtp reply: line too short: %q", clip(line))
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil || code < 200 || code > 599 {
		return 0, "", fmt.Errorf("smtp reply: bad code in %q", clip(line))
	}
	if len(line) == 3 {
		return code, "", nil
	}
	if line[3] != ' ' && line[3] != '-' {
		return 0, "", fmt.Errorf("smtp reply: bad separator in %q", clip(line))
	}
	return code, line[4:], nil
}

// cutEnhanced takes a leading "x.y.z " off text when x matches the reply
// code's class.
func cutEnhanced(text string, code int) (enh, rest string, ok bool) {
	word, rest, _ := strings.Cut(text, " ")
	if !ValidEnhanced(word) || int(word[0]-'0') != code/100 {
		return "", text, false
	}
	return word, rest, true
}

// ValidEnhanced reports whether s is an RFC 3463 status code: class 2, 4
// or 5, subject 0-999, detail 0-999.
func ValidEnhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
