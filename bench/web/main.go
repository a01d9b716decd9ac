// Command web measures the dashboard's server time on a large store: it
// fills a SQLite store through the store API with -queued pending
// deliveries (one message each) and -events events in all (the deliveries'
// own queued events plus delivered, deferred and bounced ones spread over
// the last -days days, in time order as they are recorded live), then renders the overview, the activity list and a
// message page in-process (internal/web's handler, as posthorn serve
// mounts it) -runs times each, for an installation owner and for a tenant
// admin, and prints the median and worst times.
//
// Run from the project root: go run ./bench/web [-queued 100000] [-events 1000000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/tenant"
	"github.com/posthorn/posthorn/internal/web"
)

func main() {
	queued := flag.Int("queued", 100000, "pending deliveries")
	events := flag.Int("events", 1000000, "events in all")
	days := flag.Int("days", 7, "days the extra events are spread over")
	runs := flag.Int("runs", 10, "renders of each page")
	flag.Parse()
	work, err := os.MkdirTemp("", "posthorn-bench-web-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	st, err := sqlite.Open(filepath.Join(work, "posthorn.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()

	tenants := tenant.New(st)
	if err := st.CreateTenant(ctx, store.Tenant{ID: "t1", Name: "t1", CreatedAt: now}); err != nil {
		log.Fatal(err)
	}
	if _, _, err := tenants.AddAccount(ctx, "owner@bench.test", "", tenant.RoleOwner, "bench-password"); err != nil {
		log.Fatal(err)
	}
	if _, _, err := tenants.AddAccount(ctx, "admin@bench.test", "t1", tenant.RoleAdmin, "bench-password"); err != nil {
		log.Fatal(err)
	}

	start := time.Now()
	ids := fill(ctx, st, *queued, now)
	extra := max(*events-*queued, 0)
	addEvents(ctx, st, extra, ids, now, time.Duration(*days)*24*time.Hour)
	fmt.Printf("filled: %d queued deliveries, %d events in %s\n", *queued, *queued+extra, time.Since(start).Round(time.Second))

	d, err := web.New(web.Config{Store: st, Tenants: tenants, Ops: &ops.QueueOps{Store: st, Now: time.Now}})
	if err != nil {
		log.Fatal(err)
	}
	h := d.Handler()
	msg := ids[len(ids)/2]
	for _, who := range []string{"owner@bench.test", "admin@bench.test"} {
		cookie := login(h, who)
		fmt.Printf("\n%s\n", who)
		for _, p := range []string{"/ui/", "/ui/messages", "/ui/messages?state=queued&domain=d7.bench.test", "/ui/messages/" + msg, "/ui/dlq"} {
			var times []time.Duration
			for range *runs {
				t0 := time.Now()
				code := get(h, p, cookie)
				times = append(times, time.Since(t0))
				if code != 200 {
					log.Fatalf("GET %s: %d", p, code)
				}
			}
			first := times[0] // the overview's first render counts events; later ones reuse the counts for 5s
			slices.Sort(times)
			fmt.Printf("  %-50s first %8s  median %8s  worst %8s\n", p, first.Round(time.Millisecond/10), times[len(times)/2].Round(time.Millisecond/10), times[len(times)-1].Round(time.Millisecond/10))
		}
	}
}

// fill inserts n messages of one queued delivery each, a week in the
// future so nothing would be dialled, over 100 domains.
func fill(ctx context.Context, st store.Store, n int, now time.Time) []string {
	var ids []string
	const batch = 1000
	for i := 0; i < n; i += batch {
		var nms []*store.NewMessage
		for j := i; j < min(i+batch, n); j++ {
			id := fmt.Sprintf("m%08d", j)
			ids = append(ids, id)
			created := now.Add(-time.Duration(n-j) * time.Second)
			m := &store.Message{ID: id, TenantID: "t1", Sender: "app@bench.test", Lane: store.LaneNormal, Source: "http",
				Size: 100, CreatedAt: created, Body: []byte("Subject: bench\r\n\r\nhi\r\n"), Subject: "bench"}
			dom := fmt.Sprintf("d%d.bench.test", j%100)
			nms = append(nms, &store.NewMessage{Message: m, Deliveries: []*store.Delivery{{Recipient: fmt.Sprintf("r%d@%s", j, dom),
				Domain: dom, Lane: store.LaneNormal, State: store.Queued, CreatedAt: created, NextAttemptAt: now.Add(7 * 24 * time.Hour),
				ExpiresAt: now.Add(8 * 24 * time.Hour)}}})
		}
		if err := st.InsertMessages(ctx, nms); err != nil {
			log.Fatal(err)
		}
	}
	return ids
}

// addEvents records n outcome events on the messages, from 64 writers so
// the store's group commit batches them.
func addEvents(ctx context.Context, st store.Store, n int, ids []string, now time.Time, span time.Duration) {
	types := []string{store.EventDelivered, store.EventDelivered, store.EventDeferred, store.EventBounced}
	var wg sync.WaitGroup
	const workers = 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				id := ids[i%len(ids)]
				// In time order, as recorded live.
				e := store.Event{At: now.Add(-span + time.Duration(int64(i)*int64(span)/int64(n))), Type: types[i%len(types)],
					TenantID: "t1", MessageID: id, Recipient: "r@bench.test", Detail: "bench"}
				if err := st.RecordEvent(ctx, e); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
}

func login(h http.Handler, email string) *http.Cookie {
	form := url.Values{"email": {email}, "password": {"bench-password"}}
	r := httptest.NewRequest("POST", "/ui/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name == "posthorn_ui" {
			return c
		}
	}
	log.Fatalf("login %s: %d", email, w.Code)
	return nil
}

func get(h http.Handler, path string, c *http.Cookie) int {
	r := httptest.NewRequest("GET", path, nil)
	r.AddCookie(c)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	io.Copy(io.Discard, w.Body)
	return w.Code
}
