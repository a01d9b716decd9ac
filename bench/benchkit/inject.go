package benchkit

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Inject is one authenticated SMTP session that sends messages while
// next stays within n: MAIL, RCPT and DATA pipelined, then data (a whole
// message, dot-stuffed, without the final "."). It returns how long each
// message took from the end of its data to the 250.
func (p *Posthorn) Inject(next *atomic.Int64, n int, from, data string) ([]time.Duration, error) {
	to := []string{"rcpt@sink.test"}
	return p.InjectTo(next, n, from, func(int64) []string { return to }, data)
}

// InjectTo is Inject with the recipients of message i (1..n) given by
// rcpts (all commands of a transaction pipelined).
func (p *Posthorn) InjectTo(next *atomic.Int64, n int, from string, rcpts func(i int64) []string, data string) ([]time.Duration, error) {
	c, err := net.Dial("tcp", p.SMTP)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	read := func() (string, error) { // the last line of a reply
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(line) < 4 || line[3] == ' ' {
				return line, nil
			}
		}
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + p.User + "\x00" + p.Pass))
	fmt.Fprintf(c, "EHLO bench\r\nAUTH PLAIN %s\r\n", auth)
	read()
	if l, err := read(); err != nil || !strings.HasPrefix(l, "235") {
		return nil, fmt.Errorf("auth: %q %v", l, err)
	}
	msg := []byte(data + ".\r\n")
	var env []byte
	var took []time.Duration
	for i := next.Add(1); i <= int64(n); i = next.Add(1) {
		to := rcpts(i)
		env = fmt.Appendf(env[:0], "MAIL FROM:<%s>\r\n", from)
		for _, r := range to {
			env = fmt.Appendf(env, "RCPT TO:<%s>\r\n", r)
		}
		env = append(env, "DATA\r\n"...)
		if _, err := c.Write(env); err != nil {
			return nil, err
		}
		for range len(to) + 2 {
			if l, err := read(); err != nil || l[0] != '2' && l[0] != '3' {
				return nil, fmt.Errorf("transaction: %q %v", l, err)
			}
		}
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if l, err := read(); err != nil || !strings.HasPrefix(l, "250") {
			return nil, fmt.Errorf("data: %q %v", l, err)
		}
		took = append(took, time.Since(t0))
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return took, nil
}

// Median is the middle value of xs (xs is not changed).
func Median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
