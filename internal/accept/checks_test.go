package accept

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
)

type enqueued struct {
	mu sync.Mutex
	ds []store.Delivery
}

func (e *enqueued) Enqueue(ds []store.Delivery) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ds = append(e.ds, ds...)
}

// failingStore fails every write of messages.
type failingStore struct{ store.Store }

func (failingStore) InsertMessages(context.Context, []*store.NewMessage) error {
	return errors.New("disk on fire")
}

// checkFunc is a Check made of a function.
type checkFunc func(context.Context, *CheckInput) (*Verdict, error)

func (f checkFunc) Check(ctx context.Context, in *CheckInput) (*Verdict, error) { return f(ctx, in) }

// TestChecks: a check's verdict holds the message (stored held), adds headers and tags, and its events are written with the
// message's ID; a refusal stores nothing; Done says whether the message
// was stored, also when a later step refuses it.
func TestChecks(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := &enqueued{}
	var mu sync.Mutex
	done := map[string]bool{}
	p := &Pipeline{Store: st, Sched: q, Hostname: "mx.test", Lifetime: time.Hour, Now: time.Now,
		Checks: []Check{checkFunc(func(_ context.Context, in *CheckInput) (*Verdict, error) {
			subject := HeaderValue(in.Body, "Subject")
			if subject == "refuse" {
				return nil, Refusal(550, "5.7.1", "no", 422, "nope", 0)
			}
			v := &Verdict{Headers: []string{"X-Checked: yes"}, Tags: []string{"checked"},
				Events: []store.Event{{Type: "scanned", Detail: `{"score":1}`}},
				Done:   func(stored bool) { mu.Lock(); done[subject] = stored; mu.Unlock() }}
			v.Hold = subject == "hold"
			return v, nil
		})}}
	sub := func(subject string, rcpts ...string) *Submission {
		return &Submission{TenantID: "t1", Sender: "a@app.test", Recipients: rcpts, Tags: []string{"mine"},
			Body: []byte("From: a@app.test\r\nSubject: " + subject + "\r\n\r\nhi\r\n")}
	}
	res, errs := p.AcceptBatch(context.Background(), []*Submission{sub("hold", "r@x.test"), sub("pass", "r@x.test"), sub("refuse", "r@x.test"), sub("bad")})
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if rej, ok := IsRejection(errs[2]); !ok || rej.APICode != "nope" {
		t.Fatalf("refusal: %v", errs[2])
	}
	if errs[3] == nil || !done["pass"] || !done["hold"] || done["bad"] || len(done) != 3 {
		t.Fatalf("done: %v, errs %v", done, errs)
	}
	if res[0].Deliveries[0].State != store.Held || res[1].Deliveries[0].State != store.Queued {
		t.Fatalf("states: %+v %+v", res[0].Deliveries, res[1].Deliveries)
	}
	// The scheduler is handed both and skips what is held (as it skips
	// suppressed deliveries).
	if len(q.ds) != 2 || q.ds[0].State != store.Held || q.ds[1].State != store.Queued {
		t.Fatalf("handed to the scheduler: %+v", q.ds)
	}
	m, err := st.GetMessage(context.Background(), "t1", res[0].MessageID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Body), "X-Checked: yes\r\n") || strings.Join(m.Tags, ",") != "mine,checked" {
		t.Fatalf("stored message: tags %v, body %q", m.Tags, m.Body)
	}
	evs, err := st.Events(context.Background(), store.EventFilter{MessageID: res[0].MessageID})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "held,scanned" {
		t.Fatalf("events of the held message: %v", types)
	}

	// A failed write: Done(false).
	p.Store = failingStore{st}
	_, errs = p.AcceptBatch(context.Background(), []*Submission{sub("late", "r@x.test")})
	if errs[0] == nil || errors.As(errs[0], new(*Error)) || done["late"] {
		t.Fatalf("store closed: err %v, done %v", errs[0], done)
	}
	if _, ok := done["late"]; !ok {
		t.Fatal("Done not called after a failed write")
	}
}

// TestChecksSeeTheStoredLane: the lane a check is shown is the lane the
// message is stored in, whatever the spelling of X-Posthorn-Lane (the
// header is read once, for the checks and for the message).
func TestChecksSeeTheStoredLane(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	seen := map[string]store.Lane{}
	p := &Pipeline{Store: st, Sched: &enqueued{}, Hostname: "mx.test", Lifetime: time.Hour, Now: time.Now,
		Checks: []Check{checkFunc(func(_ context.Context, in *CheckInput) (*Verdict, error) {
			mu.Lock()
			seen[HeaderValue(in.Body, "Subject")] = in.Lane
			mu.Unlock()
			return nil, nil
		})}}
	cases := []struct {
		subject, header string
		lane            store.Lane // the submission's default
		fixed           bool
	}{
		{"upper", "X-Posthorn-Lane: HIGH\r\n", "", false},
		{"empty", "X-Posthorn-Lane:\r\n", store.LaneLow, false},
		{"plain", "X-Posthorn-Lane: low\r\n", "", false},
		{"fixed", "X-Posthorn-Lane: low\r\n", store.LaneHigh, true},
		{"none", "", store.LaneHigh, false},
	}
	var subs []*Submission
	for _, c := range cases {
		subs = append(subs, &Submission{TenantID: "t1", Sender: "a@app.test", Recipients: []string{"r@x.test"}, Lane: c.lane, LaneFixed: c.fixed,
			Body: []byte("From: a@app.test\r\nSubject: " + c.subject + "\r\n" + c.header + "\r\nhi\r\n")})
	}
	res, errs := p.AcceptBatch(context.Background(), subs)
	for i, c := range cases {
		if errs[i] != nil {
			t.Fatalf("%s: %v", c.subject, errs[i])
		}
		if got, stored := seen[c.subject], res[i].Deliveries[0].Lane; got != stored {
			t.Errorf("%s: the check saw lane %q, the message is stored in %q", c.subject, got, stored)
		}
	}
}
