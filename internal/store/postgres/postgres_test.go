package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a store on a fresh database, closed when t ends.
func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestEventLogConformance(t *testing.T) {
	storetest.RunEventLog(t, func(t *testing.T) storetest.EventStore { return open(t) })
}

func TestCredentials(t *testing.T) { storetest.Credentials(t, open(t)) }
func TestDomains(t *testing.T)     { storetest.Domains(t, open(t)) }
func TestDMARC(t *testing.T)       { storetest.DMARC(t, open(t)) }
func TestAlerts(t *testing.T)      { storetest.Alerts(t, open(t)) }
func TestObserver(t *testing.T)    { storetest.Observer(t, open(t)) }

// TestMigrateConcurrently: nodes starting together on one empty database
// all open it, and the schema is migrated exactly once.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rows, v int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &v); err != nil || rows != 1 || v != SchemaVersion() {
		t.Fatalf("schema_version: %v rows=%d version=%d want 1 row at %d", err, rows, v, SchemaVersion())
	}
}
