package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

const cookieName = "posthorn_ui"

// session is one logged-in account. Sessions live in memory only: a
// restart logs everyone out (documented in docs/dashboard.md).
type session struct {
	ID       string
	Email    string
	TenantID string // "" with role owner: the whole installation
	Role     string
	CSRF     string // per-session token every POST must carry
	Expires  time.Time
}

// sessions holds the live sessions, each expiring ttl after login.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, m: map[string]*session{}}
}

func token() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand never fails on Linux (Go 1.24+ panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(email, tenantID, role string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, x := range s.m { // drop expired ones while we hold the lock
		if now.After(x.Expires) {
			delete(s.m, id)
		}
	}
	x := &session{ID: token(), Email: email, TenantID: tenantID, Role: role, CSRF: token(), Expires: now.Add(s.ttl)}
	s.m[x.ID] = x
	return x
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[id]
	if x == nil {
		return nil
	}
	if s.now().After(x.Expires) {
		delete(s.m, id)
		return nil
	}
	c := *x
	return &c
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (x *session) csrfOK(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	if got == "" {
		got = r.Header.Get("X-CSRF-Token")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(x.CSRF)) == 1
}
