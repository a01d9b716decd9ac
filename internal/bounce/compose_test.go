package bounce

import (
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpproto"
)

// TestComposeRoundTrip: our own parser reads the DSN we write.
func TestComposeRoundTrip(t *testing.T) {
	now := time.Now()
	raw := Compose("mx.posthorn.test", "app@app.test", now, []Failed{
		{Recipient: "gone@x.test", Reply: smtpproto.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, RemoteMTA: "mx.x.test", LastTry: now},
		{Recipient: "slow@y.test", Detail: "retries exhausted after 5 days"},
	}, []byte("From: app@app.test\r\nTo: gone@x.test\r\nSubject: hi\r\n"), now)
	rep, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != KindDSN || len(rep.Recipients) != 2 {
		t.Fatalf("parsed %+v", rep)
	}
	if r := rep.Recipients[0]; r.Address != "gone@x.test" || r.Status != "5.1.1" || !r.Hard {
		t.Fatalf("first: %+v", r)
	}
	if r := rep.Recipients[1]; r.Address != "slow@y.test" || r.Status != "5.4.7" || r.Hard {
		t.Fatalf("second: %+v", r)
	}
}
