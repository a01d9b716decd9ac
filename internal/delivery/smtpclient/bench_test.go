package smtpclient

import (
	"bytes"
	"net"
	"testing"
)

// benchMessage returns a 4 KiB message with 76-character lines, some of
// them starting with a dot.
func benchMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.test\r\nTo: b@example.test\r\nSubject: benchmark\r\nMessage-ID: <1@example.test>\r\n\r\n")
	line := bytes.Repeat([]byte("x"), 74)
	for i := 0; b.Len() < 4096-76; i++ {
		if i%10 == 0 {
			b.WriteByte('.')
			b.Write(line[1:])
		} else {
			b.Write(line)
		}
		b.WriteString("\r\n")
	}
	for b.Len() < 4094 {
		b.WriteByte('y')
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func benchClient(b *testing.B, addr string) *Client {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(conn, Options{LocalName: "bench.test"})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Hello(); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkSend sends 4 KiB messages over one pipelining connection to a
// loopback sink, one transaction after the other.
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name  string
		rcpts []string
	}{
		{"rcpt=1", []string{"r@example.test"}},
		{"rcpt=3", []string{"r1@example.test", "r2@example.test", "r3@example.test"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr, delivered := startSink(b)
			c := benchClient(b, addr)
			msg := benchMessage()
			opts := SendOptions{Size: true, EightBit: true}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Send("s@example.test", bc.rcpts, msg, opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			b.StopTimer()
			c.Quit()
			if n := delivered(); n != b.N {
				b.Errorf("sink got %d messages, want %d", n, b.N)
			}
		})
	}
}

// BenchmarkSendParallel runs one connection per goroutine, as the
// delivery workers do.
func BenchmarkSendParallel(b *testing.B) {
	addr, _ := startSink(b)
	msg := benchMessage()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		c := benchClient(b, addr)
		defer c.Quit()
		for pb.Next() {
			if _, err := c.Send("s@example.test", []string{"r@example.test"}, msg, SendOptions{Size: true}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

func BenchmarkWriteBody(b *testing.B) {
	msg := benchMessage()
	var sink bytes.Buffer
	w := newDiscardWriter(&sink)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		writeBody(w, msg)
		w.Flush()
		sink.Reset()
	}
}
