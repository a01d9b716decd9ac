package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/posthorn/posthorn/internal/store/storetest"
)

func TestDMARCStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "posthorn.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.DMARC(t, s)
}
