package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSnapshot stands in for the store's online backup.
func fakeSnapshot(_ context.Context, path string) error {
	return os.WriteFile(path, []byte("database pages"), 0o600)
}

func dataDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(dir, "tls"), 0o700)
	for name, body := range map[string]string{"verp.key": "v", "tls/cert.pem": "c", "lock": "", "posthorn.db": "live db",
		"posthorn.db-wal": "wal", ".backup-old/x": "tmp"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRoundTrip: a backup holds the snapshot (not the live database file)
// and the key files, not the lock, WAL or temporary files; it restores
// into an empty directory, and not into a non-empty one without force.
func TestRoundTrip(t *testing.T) {
	src := dataDir(t)
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, src, "test", 3, fakeSnapshot); err != nil {
		t.Fatal(err)
	}
	m, err := Verify(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "posthorn.db,tls/cert.pem,verp.key" {
		t.Fatalf("backup holds %s", got)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst, false, nil); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"posthorn.db": "database pages", "verp.key": "v", "tls/cert.pem": "c"} {
		if b, _ := os.ReadFile(filepath.Join(dst, name)); string(b) != want {
			t.Errorf("%s restored as %q", name, b)
		}
	}
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst, false, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("restore into a non-empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(dst, "posthorn.db-wal"), []byte("stale"), 0o600)
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst, true, nil); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "posthorn.db-wal")); !os.IsNotExist(err) {
		t.Error("a forced restore left the old WAL to be replayed over the restored database")
	}
}

// TestDamagedBackupChangesNothing: a truncated backup, a changed byte, an
// entry escaping the directory and a failed database check are refused
// before anything is moved into place.
func TestDamagedBackupChangesNothing(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, dataDir(t), "test", 3, fakeSnapshot); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	raw := func(entries map[string]string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		tw := tar.NewWriter(zw)
		for name, body := range entries {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg})
			tw.Write([]byte(body))
		}
		tw.Close()
		zw.Close()
		return b.Bytes()
	}
	// Flip one byte of the database inside the (uncompressed) tar.
	zr, _ := gzip.NewReader(bytes.NewReader(good))
	var plain bytes.Buffer
	plain.ReadFrom(zr)
	flipped := bytes.Replace(plain.Bytes(), []byte("database pages"), []byte("database pagez"), 1)
	var changed bytes.Buffer
	zw := gzip.NewWriter(&changed)
	zw.Write(flipped)
	zw.Close()

	cases := map[string]struct {
		data  []byte
		check func(string) error
	}{
		"truncated":    {good[:len(good)/2], nil},
		"changed byte": {changed.Bytes(), nil},
		"escape":       {raw(map[string]string{"../evil": "x"}), nil},
		"no manifest":  {raw(map[string]string{"posthorn.db": "x"}), nil},
		"db refused":   {good, func(string) error { return errors.New("schema too new") }},
	}
	for name, c := range cases {
		dst := filepath.Join(t.TempDir(), "d")
		if _, err := Restore(bytes.NewReader(c.data), dst, false, c.check); err == nil {
			t.Errorf("%s: restored", name)
		}
		entries, _ := os.ReadDir(dst)
		if len(entries) != 0 {
			t.Errorf("%s: left %d entries in the data directory", name, len(entries))
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "evil")); err == nil {
			t.Errorf("%s: wrote outside the data directory", name)
		}
	}
}
