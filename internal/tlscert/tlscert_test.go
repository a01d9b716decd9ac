package tlscert

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/posthorn/posthorn/internal/testkit"
)

func TestReload(t *testing.T) {
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	one, _ := ca.Issue("one.test")
	two, _ := ca.Issue("two.test")
	if err := testkit.WriteCertPEM(one, cp, kp); err != nil {
		t.Fatal(err)
	}
	r, err := Load(cp, kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := func() string { return r.Certificate().Leaf.DNSNames[0] }
	if changed, err := r.Check(); changed || err != nil || name() != "one.test" {
		t.Fatalf("unchanged files: changed %v err %v name %s", changed, err, name())
	}
	// A key without its certificate yet: the old pair stays.
	kb, _ := os.ReadFile(kp)
	if err := testkit.WriteCertPEM(two, cp+".new", kp); err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Check(); changed || err == nil || name() != "one.test" {
		t.Fatalf("mismatched pair: changed %v err %v name %s", changed, err, name())
	}
	if err := os.Rename(cp+".new", cp); err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Check(); !changed || err != nil || name() != "two.test" {
		t.Fatalf("new pair: changed %v err %v name %s", changed, err, name())
	}
	// Reload re-reads even when the stamps look the same.
	st, _ := os.Stat(cp)
	os.WriteFile(kp, kb, 0o600)
	if err := testkit.WriteCertPEM(one, cp, kp); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(cp, st.ModTime(), st.ModTime())
	if err := r.Reload(); err != nil || name() != "one.test" {
		t.Fatalf("Reload: %v, name %s", err, name())
	}
	if _, err := Load(filepath.Join(dir, "missing.pem"), kp, nil); err == nil {
		t.Fatal("missing certificate loaded")
	}
}
