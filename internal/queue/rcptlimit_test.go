package queue

import (
	"context"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/delivery"
	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestSendTxTooManyRecipients: recipients refused with 452 4.5.3 go in the
// next transactions on the same connection; a server that refuses them
// all ends the loop.
func TestSendTxTooManyRecipients(t *testing.T) {
	dnsSrv := testkit.StartDNS(t)
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{MaxRcptsPerTxn: 2})
	dnsSrv.SetA("limit.test", "127.0.0.2")
	res, err := delivery.NewResolver(dnsSrv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	dl := delivery.New(delivery.Config{Hostname: "out.test", Port: mx.Port()}, res)
	conn, f := dl.Dial(context.Background(), "limit.test")
	if f != nil {
		t.Fatal(f)
	}
	defer conn.Close()
	msg := delivery.Message{Sender: "s@out.test", Body: []byte("Subject: x\r\n\r\nx\r\n")}
	rcpts := []string{"1@limit.test", "2@limit.test", "3@limit.test", "4@limit.test", "5@limit.test"}
	for i, r := range sendTx(conn, msg, rcpts) {
		if r.Reply.Code != 250 {
			t.Errorf("%s: %+v", rcpts[i], r)
		}
	}
	var txns []string
	for _, m := range mx.Messages() {
		txns = append(txns, strings.Join(m.To, ","))
	}
	if strings.Join(txns, " ") != "1@limit.test,2@limit.test 3@limit.test,4@limit.test 5@limit.test" || mx.Connections() != 1 {
		t.Fatalf("transactions %q over %d connections", txns, mx.Connections())
	}

	// Every recipient refused: one transaction, each keeps its 452.
	mx.SetScript(testkit.Script{MaxRcptsPerTxn: 2, Rcpt: func(string) testkit.Reply {
		return testkit.Reply{Code: 452, Text: "4.5.3 Too many recipients"}
	}})
	before := mx.Transactions()
	for i, r := range sendTx(conn, msg, rcpts[:3]) {
		if r.Reply.Code != 452 {
			t.Errorf("%s: %+v", rcpts[i], r)
		}
	}
	if n := mx.Transactions() - before; n != 1 {
		t.Fatalf("%d transactions for recipients nobody takes", n)
	}
}

func TestTooManyRecipients(t *testing.T) {
	for _, c := range []struct {
		phase string
		reply smtpproto.Reply
		want  bool
	}{
		{"rcpt", smtpproto.Reply{Code: 452, Enhanced: "4.5.3", Text: "Too many recipients"}, true},
		{"rcpt", smtpproto.Reply{Code: 452, Text: "Too many recipients for this message"}, true},
		{"rcpt", smtpproto.Reply{Code: 452, Enhanced: "4.2.2", Text: "Mailbox full"}, false},
		{"rcpt", smtpproto.Reply{Code: 451, Enhanced: "4.5.3", Text: "Too many recipients"}, false},
		{"data", smtpproto.Reply{Code: 452, Enhanced: "4.5.3", Text: "Too many recipients"}, false},
	} {
		if got := tooManyRecipients(delivery.Result{Phase: c.phase, Reply: c.reply}); got != c.want {
			t.Errorf("%s %s: %v", c.phase, c.reply, got)
		}
	}
}
