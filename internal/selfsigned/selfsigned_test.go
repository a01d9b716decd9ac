package selfsigned

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func dnsNames(t *testing.T, dir, hostname string) []string {
	t.Helper()
	c, err := LoadOrCreate(dir, hostname)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.DNSNames
}

// TestNewHostnameNewCertificate: after the hostname changes, the
// self-signed certificate is made again for the new name; the same name
// keeps the same certificate.
func TestNewHostnameNewCertificate(t *testing.T) {
	dir := t.TempDir()
	if got := dnsNames(t, dir, "vm"); got[0] != "vm" {
		t.Fatalf("first certificate for %v", got)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	dnsNames(t, dir, "vm")
	if again, _ := os.ReadFile(filepath.Join(dir, "cert.pem")); string(again) != string(before) {
		t.Fatal("the certificate was made again for the same hostname")
	}
	if got := dnsNames(t, dir, "mail.example.com"); len(got) != 1 || got[0] != "mail.example.com" {
		t.Fatalf("after the hostname changed: certificate for %v, want mail.example.com", got)
	}

}
