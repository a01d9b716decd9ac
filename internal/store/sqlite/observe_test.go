package sqlite

import (
	"path/filepath"
	"strings"
	"testing"

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
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN ` + queueShapeSQL())
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
	if !strings.Contains(plan.String(), "COVERING INDEX deliveries_queue") || strings.Contains(plan.String(), "TEMP B-TREE") {
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
