package server

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/posthorn/posthorn/internal/store/sqlite"
	"github.com/posthorn/posthorn/internal/tenant"
)

// TestMetricsAllowed: /metrics on the HTTP listener answers loopback
// clients, and others only with an API key that has the admin scope.
func TestMetricsAllowed(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tm := tenant.New(st)
	creds, err := tm.EnsureDefault(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := tm.CreateAPIKey(ctx, creds.TenantID, "reader", []string{tenant.ScopeSend, tenant.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{st: st, tenants: tm}
	for _, c := range []struct {
		remote, key string
		want        bool
	}{
		{"127.0.0.1:4000", "", true},
		{"[::1]:4000", "", true},
		{"192.0.2.7:4000", "", false},
		{"192.0.2.7:4000", reader, false},
		{"192.0.2.7:4000", "ph_bogus_key", false},
		{"192.0.2.7:4000", creds.APIKey, true},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = c.remote
		if c.key != "" {
			r.Header.Set("Authorization", "Bearer "+c.key)
		}
		if got := s.metricsAllowed(r); got != c.want {
			t.Errorf("from %s with key %q: allowed %v, want %v", c.remote, c.key, got, c.want)
		}
	}
}
