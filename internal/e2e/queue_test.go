package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/testkit"
)

// TestRestartWithQueuedMail stops posthorn while mail waits for an
// unreachable destination, brings the destination up, restarts posthorn,
// and checks that everything is delivered exactly once.
func TestRestartWithQueuedMail(t *testing.T) {
	w := newWorld(t, Options{RetryMin: 500 * time.Millisecond, RetryMax: time.Second}, "127.0.0.2")
	w.domain("later.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.Stop()
	const n = 20
	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		ids[w.in.Send("sender@app.test", []string{"user@later.test"}, msgBody("restart"))] = true
	}
	// Wait until they were attempted and deferred.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list api.QueueList
		w.in.CLI(&list, "queue", "list", "--state", "deferred")
		if list.Count == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d deferred", list.Count, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.in.Stop()
	if err := mx.Start(); err != nil {
		t.Fatal(err)
	}
	w.in.Restart()
	for id := range ids {
		w.in.WaitFinal(id, 30*time.Second)
	}
	got := map[string]int{}
	for _, m := range mx.Messages() {
		for id := range ids {
			if strings.Contains(string(m.Data), "<"+id+"@") {
				got[id]++
			}
		}
	}
	for id := range ids {
		if got[id] != 1 {
			t.Errorf("message %s delivered %d times", id, got[id])
		}
	}
}

// TestQueueCommands exercises hold, release, flush and delete as an
// operator would, and checks the listings and events they leave.
func TestQueueCommands(t *testing.T) {
	w := newWorld(t, Options{RetryMin: time.Hour, RetryMax: time.Hour}, "127.0.0.2")
	w.domain("ops.test", "127.0.0.2")
	w.domain("other.test", "127.0.0.2")
	mx := w.mx["127.0.0.2"]
	mx.SetScript(testkit.Script{Rcpt: func(string) testkit.Reply { return testkit.Reply{Code: 450, Text: "4.2.0 mailbox busy"} }})
	in := w.in
	a := in.Send("sender@app.test", []string{"a@ops.test"}, msgBody("a"))
	b := in.Send("sender@app.test", []string{"b@ops.test"}, msgBody("b"))
	c := in.Send("sender@app.test", []string{"c@other.test"}, msgBody("c"))
	waitState := func(id string, want store.State) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			d := in.Show(id)
			if d.Deliveries[0].State == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: state %s, want %s", id, d.Deliveries[0].State, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, id := range []string{a, b, c} {
		waitState(id, store.Deferred) // retry in an hour
	}

	var list api.QueueList
	in.CLI(&list, "queue", "list", "--domain", "ops.test")
	if list.Count != 2 {
		t.Fatalf("list --domain: %+v", list)
	}
	in.CLI(&list, "queue", "list", "--recipient", "c@other.test")
	if list.Count != 1 || list.Items[0].LastReply.Code != 450 {
		t.Fatalf("list --recipient: %+v", list)
	}

	var res ops.OpResult
	in.CLI(&res, "queue", "hold", a)
	if res.Changed != 1 {
		t.Fatalf("hold: %+v", res)
	}
	// flush: the MX accepts now; b and c are retried at once, held a is not.
	mx.SetScript(testkit.Script{})
	in.CLI(&res, "queue", "flush", "--all")
	if res.Changed != 2 {
		t.Fatalf("flush changed %d, want 2", res.Changed)
	}
	waitState(b, store.Delivered)
	waitState(c, store.Delivered)
	// No sleep to see whether a stays held: an attempt on a while it is
	// held would show in its event history, checked after the release.
	if st := in.Show(a).Deliveries[0].State; st != store.Held {
		t.Fatalf("held message after flush: state %s", st)
	}

	in.CLI(&res, "queue", "release", a)
	if res.Changed != 1 {
		t.Fatalf("release: %+v", res)
	}
	waitState(a, store.Delivered)
	if got := strings.Join(eventTypes(in.Show(a), "a@ops.test"), ","); got != "queued,deferred,held,released,delivered" {
		t.Fatalf("events of a: %s", got)
	}

	// delete: a deferred message is cancelled and never delivered.
	mx.SetScript(testkit.Script{Rcpt: func(string) testkit.Reply { return testkit.Reply{Code: 450, Text: "4.2.0 busy"} }})
	d := in.Send("sender@app.test", []string{"d@ops.test"}, msgBody("d"))
	waitState(d, store.Deferred)
	if err := in.TryCLI(nil, "queue", "delete"); err == nil {
		t.Fatal("queue delete without a selection should fail")
	}
	in.CLI(&res, "queue", "delete", "--all")
	if res.Changed != 1 {
		t.Fatalf("delete --all: %+v", res)
	}
	waitState(d, store.Cancelled)
	in.CLI(&list, "queue", "list")
	if list.Count != 0 {
		t.Fatalf("queue not empty after delete --all: %+v", list)
	}
}

// TestRealClient submits with swaks, a real SMTP client, over STARTTLS with
// AUTH LOGIN, and checks the delivery.
func TestRealClient(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		requireTool(t, "swaks")
		return
	}
	w := newWorld(t, Options{}, "127.0.0.2")
	w.domain("swaks.test", "127.0.0.2")
	out, err := exec.Command(swaks, "--server", w.in.SMTP, "--tls", "--auth", "LOGIN",
		"--auth-user", w.in.Creds.SMTPUsername, "--auth-password", w.in.Creds.SMTPPassword,
		"--from", "sender@app.test", "--to", "r1@swaks.test,r2@swaks.test", "--header", "Subject: from swaks",
		"--pipeline").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	i := strings.LastIndex(string(out), "queued as ")
	if i < 0 {
		t.Fatalf("no queue id in swaks output:\n%s", out)
	}
	id := strings.Fields(string(out)[i+len("queued as "):])[0]
	d := w.in.WaitFinal(id, 20*time.Second)
	for _, r := range []string{"r1@swaks.test", "r2@swaks.test"} {
		if dl := delivery(t, d, r); dl.State != store.Delivered {
			t.Fatalf("%s: %+v", r, dl)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := w.mx["127.0.0.2"].WaitMessages(ctx, 1)
	if err != nil || !strings.Contains(string(msgs[0].Data), "Subject: from swaks") {
		t.Fatalf("mx got %+v, %v", msgs, err)
	}
}
