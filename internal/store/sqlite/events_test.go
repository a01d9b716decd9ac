package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/posthorn/posthorn/internal/store/storetest"
)

func TestEventLogConformance(t *testing.T) {
	storetest.RunEventLog(t, func(t *testing.T) storetest.EventStore {
		s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
