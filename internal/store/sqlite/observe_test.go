package sqlite

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/storetest"
)

// TestObserver runs the shared observer checks (storetest.Observer), then
// proves the queue shape is read from the covering index alone.
func TestObserver(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Observer(t, s)

	var plan strings.Builder
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN SELECT state, lane, count(*), min(created_at) FROM deliveries INDEXED BY deliveries_shape
		WHERE state IN (` + store.SQLList(shapeStates) + `) GROUP BY state, lane`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		rows.Scan(&id, &parent, &unused, &detail)
		plan.WriteString(detail + "\n")
	}
	rows.Close()
	if !strings.Contains(plan.String(), "COVERING INDEX deliveries_shape") {
		t.Errorf("queue shape does not use the covering index:\n%s", plan.String())
	}
}

func TestAlerts(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Alerts(t, s)
}
