package smtpscript

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// selfSignedPEM returns a throw-away certificate and key for 127.0.0.1.
func selfSignedPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// fakeServer listens on loopback and runs handle for each connection.
func fakeServer(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// fakeSMTP is a minimal line-based SMTP peer: it sends greeting, then for
// every line received (terminated by LF) calls respond, which returns the
// raw reply to send ("" for none) and whether to hang up afterwards. All
// bytes received are recorded.
type fakeSMTP struct {
	greeting string
	respond  func(line string) (reply string, hangup bool)
	tlsCert  *tls.Certificate // if set, "STARTTLS" upgrades the connection

	mu   sync.Mutex
	recv strings.Builder
}

func (f *fakeSMTP) received() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recv.String()
}

func (f *fakeSMTP) serve(c net.Conn) {
	if f.greeting != "" {
		c.Write([]byte(f.greeting))
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		f.mu.Lock()
		f.recv.WriteString(line)
		f.mu.Unlock()
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		if f.tlsCert != nil && strings.EqualFold(cmd, "STARTTLS") {
			c.Write([]byte("220 go ahead\r\n"))
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*f.tlsCert}})
			if tc.Handshake() != nil {
				return
			}
			c, r = tc, bufio.NewReader(tc)
			continue
		}
		reply, hangup := f.respond(cmd)
		if reply != "" {
			c.Write([]byte(reply))
		}
		if hangup {
			return
		}
	}
}

// okServer answers everything with 250, EHLO with a multiline reply, QUIT
// with 221 and a hang-up, and "BAD..." with 500.
func okServer(line string) (string, bool) {
	switch u := strings.ToUpper(line); {
	case strings.HasPrefix(u, "EHLO"):
		return "250-fake\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", false
	case u == "QUIT":
		return "221 bye\r\n", true
	case strings.HasPrefix(u, "BAD"):
		return "500 no\r\n", false
	case strings.HasPrefix(u, "TEMP"):
		return "451 later\r\n", false
	}
	return "250 ok\r\n", false
}
