package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/posthorn/posthorn/internal/store"
)

// Config tunes the sender.
type Config struct {
	Schedule     []time.Duration // wait before retry n (1-based: Schedule[0] after the first failure)
	DisableAfter time.Duration
	Timeout      time.Duration
	MaxInFlight  int // per endpoint
	Guard        *Guard
	Log          *slog.Logger
	Now          func() time.Time
}

// maxTotal bounds requests in flight across all endpoints.
const maxTotal = 64

// minPass is the least time between two reads of the outbox.
const minPass = 10 * time.Millisecond

// responseCap is how much of an answer is read; responseKeep how much of
// it is recorded with the attempt.
const (
	responseCap  = 64 << 10
	responseKeep = 512
)

// Sender delivers the outbox. Start it once; Stop waits for requests in
// flight to end (they are cut off by the stop).
type Sender struct {
	cfg    Config
	st     store.Store
	client *http.Client

	// mu guards the in-flight bookkeeping.
	mu      sync.Mutex
	ids     map[int64]bool
	keys    map[[2]string]bool
	perEP   map[string]int
	total   int
	settled chan struct{} // a request finished
	// gen counts outbox reads; finished holds, for requests that ended
	// recently, the gen current when they were recorded. A read that
	// began before a record may still hold that row: it is skipped.
	gen      uint64
	finished map[int64]uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a sender over st.
func New(cfg Config, st store.Store) *Sender {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Guard.Timeout == 0 {
		cfg.Guard.Timeout = cfg.Timeout
	}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           cfg.Guard.DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   cfg.MaxInFlight,
		IdleConnTimeout:       90 * time.Second,
	}
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sender{cfg: cfg, st: st, client: client, ids: map[int64]bool{}, keys: map[[2]string]bool{}, perEP: map[string]int{}, finished: map[int64]uint64{},
		settled: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// Start runs the sender until Stop.
func (s *Sender) Start(context.Context) error {
	s.wg.Add(1)
	go s.loop()
	return nil
}

// Stop ends the loop and waits for requests in flight.
func (s *Sender) Stop() {
	s.cancel()
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

func (s *Sender) loop() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var last time.Time
	for {
		// Under a stream of events the store pokes after every commit:
		// passes are spaced so reading the outbox stays a small cost.
		if wait := minPass - time.Since(last); wait > 0 {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		now := s.cfg.Now()
		if err := s.dispatch(now); err != nil && s.ctx.Err() == nil {
			s.cfg.Log.Error("webhooks: read outbox", "err", err)
		}
		wait := time.Minute // a safety net; the store and finished requests wake the loop
		if next, err := s.st.NextWebhookDue(s.ctx, now); err == nil && !next.IsZero() {
			wait = min(wait, max(time.Millisecond, next.Sub(s.cfg.Now())))
		}
		timer.Reset(wait)
		select {
		case <-s.ctx.Done():
			return
		case <-s.st.WebhookSignal():
		case <-s.settled:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// dispatch starts a request for every due webhook that may go now.
func (s *Sender) dispatch(now time.Time) error {
	s.mu.Lock()
	limit := 256 + s.total
	s.gen++
	read := s.gen
	s.mu.Unlock()
	items, err := s.st.DueWebhooks(s.ctx, now, limit)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, g := range s.finished {
		if g < read {
			delete(s.finished, id) // recorded before this read began: the read saw it
		}
	}
	for _, it := range items {
		k := [2]string{it.EndpointID, it.Key}
		if s.ids[it.ID] || s.keys[k] || s.perEP[it.EndpointID] >= s.cfg.MaxInFlight || s.total >= maxTotal {
			continue
		}
		if _, stale := s.finished[it.ID]; stale {
			continue // sent while this read ran; the next read knows better
		}
		s.ids[it.ID], s.keys[k] = true, true
		s.perEP[it.EndpointID]++
		s.total++
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.send(it)
			s.mu.Lock()
			s.finished[it.ID] = s.gen
			delete(s.ids, it.ID)
			delete(s.keys, k)
			s.perEP[it.EndpointID]--
			s.total--
			s.mu.Unlock()
			select {
			case s.settled <- struct{}{}:
			default:
			}
		}()
	}
	return nil
}

// send makes one request and records it.
func (s *Sender) send(it store.OutboxItem) {
	start := s.cfg.Now()
	res := store.WebhookResult{OutboxID: it.ID, EndpointID: it.EndpointID, EventID: it.Event.ID, EventType: it.Event.Type,
		N: it.Attempts + 1, At: start}
	var retryAfter time.Duration
	if it.Missing {
		res.GiveUp, res.Error = true, "the event is no longer stored"
	} else {
		retryAfter = s.request(it, &res)
	}
	res.Duration = s.cfg.Now().Sub(start)
	if s.ctx.Err() != nil && !res.OK {
		return // cut off by Stop: not the endpoint's fault; retried at the next start
	}
	if !res.OK && !res.GiveUp {
		if res.N > len(s.cfg.Schedule) {
			res.GiveUp = true
		} else {
			d := s.cfg.Schedule[res.N-1]
			res.NextAt = start.Add(d + time.Duration(rand.Int64N(int64(d)/10+1)))
			if ra := start.Add(retryAfter); ra.After(res.NextAt) {
				res.NextAt = ra // the receiver asked for more patience
			}
		}
		failing := it.FailingSince
		if failing.IsZero() {
			failing = start
		}
		if res.Status == http.StatusGone {
			res.Disable, res.Detail = true, fmt.Sprintf("webhook %s disabled: %s answered 410 Gone", it.EndpointID, it.URL)
		} else if start.Sub(failing) >= s.cfg.DisableAfter {
			res.Disable, res.Detail = true, fmt.Sprintf("webhook %s disabled: every request failed since %s (last: %s)", it.EndpointID,
				failing.UTC().Format(time.RFC3339), res.Error)
		}
	}
	// Recorded even while stopping, so a delivered webhook is not sent again.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.st.RecordWebhookAttempt(ctx, res); err != nil {
		s.cfg.Log.Error("webhooks: record attempt", "webhook", store.WebhookID(it.ID), "err", err)
		return
	}
	if res.Disable {
		s.cfg.Log.Warn("webhook endpoint disabled", "endpoint", it.EndpointID, "reason", res.Detail)
	}
	s.cfg.Log.Debug("webhook sent", "webhook", store.WebhookID(it.ID), "endpoint", it.EndpointID, "type", it.Event.Type,
		"status", res.Status, "ok", res.OK, "err", res.Error)
}

// request sends it and fills res; for a 429 or 503 it returns the wait
// the answer's Retry-After asks for (at most an hour).
func (s *Sender) request(it store.OutboxItem, res *store.WebhookResult) (retryAfter time.Duration) {
	body, err := Body(it)
	if err != nil {
		res.GiveUp, res.Error = true, "build payload: "+err.Error()
		return 0
	}
	id := store.WebhookID(it.ID)
	ts := s.cfg.Now().Unix()
	sig, err := Sign(it.Secret, id, ts, body)
	if err != nil {
		res.GiveUp, res.Error = true, err.Error()
		return 0
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, it.URL, bytes.NewReader(body))
	if err != nil {
		res.GiveUp, res.Error = true, "bad URL: "+err.Error()
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "posthorn-webhooks/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := s.client.Do(req)
	if err != nil {
		res.Error = err.Error()
		if errors.Is(err, ErrForbidden) {
			res.Error = "refused: " + err.Error()
		}
		return 0
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, responseCap))
	res.Status = resp.StatusCode
	res.Response = firstBytes(got, responseKeep)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.OK = true
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Error = fmt.Sprintf("redirect not followed (%d to %q): update the endpoint's URL", resp.StatusCode, resp.Header.Get("Location"))
	default:
		res.Error = "answered " + resp.Status
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			return parseRetryAfter(resp.Header.Get("Retry-After"), s.cfg.Now())
		}
	}
	return 0
}

// parseRetryAfter reads delay-seconds or an HTTP date, capped at an hour.
func parseRetryAfter(v string, now time.Time) time.Duration {
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// firstBytes is up to n bytes of b, cut at a character boundary.
func firstBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	return string(b)
}
