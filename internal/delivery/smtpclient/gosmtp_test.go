package smtpclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Tests against github.com/emersion/go-smtp's server, which supports
// PIPELINING.

type gotMsg struct {
	from  string
	opts  smtp.MailOptions
	rcpts []string
	data  string
}

type backend struct {
	mu         sync.Mutex
	mails      int // MAIL commands seen (accepted or not)
	rcptCmds   int // RCPT commands seen
	datas      int // DATA bodies seen
	resets     int
	msgs       []gotMsg
	rejectMail error
	rejectRcpt map[string]error
	dataErr    error
	authUser   string
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct {
	b   *backend
	cur gotMsg
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "user" || password != "sécret pass" {
			return smtp.ErrAuthFailed
		}
		s.b.mu.Lock()
		s.b.authUser = username
		s.b.mu.Unlock()
		return nil
	}), nil
}

func (s *session) Reset() {
	s.b.mu.Lock()
	s.b.resets++
	s.b.mu.Unlock()
	s.cur = gotMsg{}
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.mails++
	if s.b.rejectMail != nil {
		return s.b.rejectMail
	}
	s.cur = gotMsg{from: from, opts: *opts}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.rcptCmds++
	if err := s.b.rejectRcpt[to]; err != nil {
		return err
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.datas++
	if s.b.dataErr != nil {
		return s.b.dataErr
	}
	s.cur.data = string(data)
	s.b.msgs = append(s.b.msgs, s.cur)
	return nil
}

func (b *backend) snapshot() (mails, rcpts, datas int, msgs []gotMsg) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mails, b.rcptCmds, b.datas, slices.Clone(b.msgs)
}

// startGoSMTP runs a go-smtp server with backend b on loopback.
func startGoSMTP(t *testing.T, b *backend, configure func(*smtp.Server)) string {
	t.Helper()
	srv := smtp.NewServer(b)
	srv.Domain = "gosmtp.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = nopLogger{}
	if configure != nil {
		configure(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func smtpErr(code int, enh [3]int, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enh), Message: msg}
}

func TestGoSMTPThreeRecipients(t *testing.T) {
	b := &backend{}
	c := mustClient(t, startGoSMTP(t, b, nil))
	if _, ok := c.Extension("pipelining"); !ok {
		t.Fatal("PIPELINING not advertised by go-smtp")
	}
	body := "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nbare\nLF\nend without newline"
	want := "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nbare\r\nLF\r\nend without newline\r\n"
	rcpts := []string{"a@x.test", "b@x.test", "c@y.test"}
	res, err := c.Send("sender@z.test", rcpts, []byte(body), SendOptions{Size: true, EightBit: true})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !slices.Equal(res.Accepted, []int{0, 1, 2}) || !res.Delivered() {
		t.Errorf("Accepted = %v, Delivered = %v", res.Accepted, res.Delivered())
	}
	if res.Mail.Code != 250 || res.Data.Code != 250 {
		t.Errorf("Mail %v, Data %v", res.Mail, res.Data)
	}
	for i, r := range res.Rcpt {
		if r.Code != 250 {
			t.Errorf("Rcpt[%d] = %v", i, r)
		}
	}
	mails, rcptN, datas, msgs := b.snapshot()
	if mails != 1 || rcptN != 3 || datas != 1 || len(msgs) != 1 {
		t.Fatalf("server saw %d MAIL, %d RCPT, %d DATA, %d messages", mails, rcptN, datas, len(msgs))
	}
	m := msgs[0]
	if m.from != "sender@z.test" || !slices.Equal(m.rcpts, rcpts) {
		t.Errorf("envelope %q → %q", m.from, m.rcpts)
	}
	if m.opts.Size != int64(len(body)) || m.opts.Body != smtp.Body8BitMIME || m.opts.UTF8 {
		t.Errorf("MAIL options %+v", m.opts)
	}
	if m.data != want {
		t.Errorf("body:\n got %q\nwant %q", m.data, want)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("Quit: %v", err)
	}
}

func TestGoSMTPOneRecipientRejected(t *testing.T) {
	b := &backend{rejectRcpt: map[string]error{"bad@x.test": smtpErr(550, [3]int{5, 1, 1}, "user unknown")}}
	c := mustClient(t, startGoSMTP(t, b, nil))
	res, err := c.Send("", []string{"a@x.test", "bad@x.test", "c@x.test"}, []byte("Subject: x\r\n\r\nhi\r\n"), SendOptions{})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !slices.Equal(res.Accepted, []int{0, 2}) {
		t.Errorf("Accepted = %v", res.Accepted)
	}
	if r := res.Rcpt[1]; r.Code != 550 || r.Enhanced != "5.1.1" || r.Text != "user unknown" {
		t.Errorf("Rcpt[1] = %+v", r)
	}
	if r := res.Rcpt[0]; r.Code != 250 || r.Enhanced != "2.0.0" {
		t.Errorf("Rcpt[0] = %+v", r)
	}
	_, _, _, msgs := b.snapshot()
	if len(msgs) != 1 || msgs[0].from != "" || !slices.Equal(msgs[0].rcpts, []string{"a@x.test", "c@x.test"}) {
		t.Errorf("messages %+v", msgs)
	}
}

func TestGoSMTPAllRecipientsRejected(t *testing.T) {
	b := &backend{rejectRcpt: map[string]error{
		"a@x.test": smtpErr(450, [3]int{4, 2, 1}, "mailbox busy"),
		"b@x.test": smtpErr(550, [3]int{5, 1, 1}, "user unknown"),
	}}
	c := mustClient(t, startGoSMTP(t, b, nil))
	res, err := c.Send("s@z.test", []string{"a@x.test", "b@x.test"}, []byte("x\r\n"), SendOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseRcpt || e.Reply == nil || e.Reply.Code != 450 || !e.Temporary {
		t.Fatalf("err = %#v", err)
	}
	if len(res.Accepted) != 0 || res.Rcpt[1].Code != 550 || res.Data.Code/100 != 5 {
		t.Errorf("result %+v", res)
	}
	if c.Broken() {
		t.Fatal("client broken after refused recipients")
	}
	res, err = c.Send("s@z.test", []string{"ok@x.test"}, []byte("second\r\n"), SendOptions{})
	if err != nil || !res.Delivered() {
		t.Fatalf("second Send: %v %+v", err, res)
	}
	_, _, _, msgs := b.snapshot()
	if len(msgs) != 1 || msgs[0].data != "second\r\n" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestGoSMTPMailRejected(t *testing.T) {
	b := &backend{rejectMail: smtpErr(553, [3]int{5, 7, 1}, "sender refused")}
	c := mustClient(t, startGoSMTP(t, b, nil))
	res, err := c.Send("s@z.test", []string{"a@x.test", "b@x.test"}, []byte("x\r\n"), SendOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseMail || e.Reply == nil || e.Reply.Code != 553 || e.Temporary {
		t.Fatalf("err = %v", err)
	}
	// Pipelined: the RCPT and DATA replies were consumed.
	if res.Rcpt[0].Code/100 != 5 || res.Rcpt[1].Code/100 != 5 || res.Data.Code/100 != 5 {
		t.Errorf("result %+v", res)
	}
	b.mu.Lock()
	b.rejectMail = nil
	b.mu.Unlock()
	if _, err := c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{}); err != nil {
		t.Fatalf("second Send: %v", err)
	}
}

func TestGoSMTPResetBetweenMessages(t *testing.T) {
	b := &backend{}
	c := mustClient(t, startGoSMTP(t, b, nil))
	for i, body := range []string{"one\r\n", "two\r\n"} {
		if i > 0 {
			if err := c.Reset(); err != nil {
				t.Fatalf("Reset: %v", err)
			}
		}
		if _, err := c.Send("s@z.test", []string{"a@x.test"}, []byte(body), SendOptions{}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	_, _, _, msgs := b.snapshot()
	if len(msgs) != 2 || msgs[0].data != "one\r\n" || msgs[1].data != "two\r\n" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestGoSMTPDataRejected(t *testing.T) {
	b := &backend{dataErr: smtpErr(451, [3]int{4, 3, 0}, "try later")}
	c := mustClient(t, startGoSMTP(t, b, nil))
	res, err := c.Send("s@z.test", []string{"a@x.test"}, []byte("x\r\n"), SendOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseDataEnd || !e.Temporary || res.Data.Code != 451 || res.Data.Enhanced != "4.3.0" {
		t.Fatalf("err = %v, res %+v", err, res)
	}
	if c.Broken() {
		t.Error("broken after 451")
	}
}

func TestGoSMTPUTF8(t *testing.T) {
	b := &backend{}
	c := mustClient(t, startGoSMTP(t, b, nil))
	_, err := c.Send("s@z.test", []string{"ü@x.test"}, []byte("x\r\n"), SendOptions{SMTPUTF8: true})
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseMail || e.Temporary || e.Reply != nil || !errors.Is(err, ErrNotSupported) {
		t.Fatalf("err = %v", err)
	}
	if mails, _, _, _ := b.snapshot(); mails != 0 {
		t.Errorf("MAIL sent despite missing SMTPUTF8")
	}

	b2 := &backend{}
	c2 := mustClient(t, startGoSMTP(t, b2, func(s *smtp.Server) { s.EnableSMTPUTF8 = true }))
	if _, err := c2.Send("s@z.test", []string{"ü@x.test"}, []byte("x\r\n"), SendOptions{SMTPUTF8: true}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, _, _, msgs := b2.snapshot(); len(msgs) != 1 || !msgs[0].opts.UTF8 || msgs[0].rcpts[0] != "ü@x.test" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestGoSMTPStartTLSAndAuth(t *testing.T) {
	b := &backend{}
	addr := startGoSMTP(t, b, func(s *smtp.Server) { s.TLSConfig = selfSigned(t) })
	c := mustClient(t, addr)
	if _, ok := c.TLS(); ok {
		t.Fatal("TLS before StartTLS")
	}
	if _, ok := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before TLS")
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	st, ok := c.TLS()
	if !ok || !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %v %+v", ok, st)
	}
	if _, ok := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS still advertised after TLS")
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("second StartTLS: %v", err)
	}
	if err := c.Auth("user", "wrong"); err == nil {
		t.Error("Auth with a wrong password succeeded")
	} else if e := (*Error)(nil); !errors.As(err, &e) || e.Phase != PhaseAuth || e.Reply == nil || e.Reply.Code != 535 {
		t.Errorf("Auth error %v", err)
	}
	if err := c.Auth("user", "sécret pass"); err != nil {
		t.Fatalf("Auth: %v", err)
	}
	if _, err := c.Send("s@z.test", []string{"a@x.test"}, []byte("secret\r\n"), SendOptions{}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	b.mu.Lock()
	user := b.authUser
	b.mu.Unlock()
	if _, _, _, msgs := b.snapshot(); len(msgs) != 1 || user != "user" {
		t.Errorf("messages %+v, auth user %q", msgs, user)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("Quit: %v", err)
	}
}

func TestGoSMTPStartTLSBadCert(t *testing.T) {
	addr := startGoSMTP(t, &backend{}, func(s *smtp.Server) { s.TLSConfig = selfSigned(t) })
	c := mustClient(t, addr)
	err := c.StartTLS(&tls.Config{ServerName: "mx.test"})
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseStartTLS || !c.Broken() {
		t.Fatalf("err = %v, broken %v", err, c.Broken())
	}
}

func TestGoSMTPManyRecipients(t *testing.T) {
	// More than one pipeline window.
	b := &backend{rejectRcpt: map[string]error{"r150@x.test": smtpErr(550, [3]int{5, 1, 1}, "no")}}
	c := mustClient(t, startGoSMTP(t, b, nil))
	var rcpts []string
	for i := range 250 {
		rcpts = append(rcpts, "r"+strconv.Itoa(i)+"@x.test")
	}
	res, err := c.Send("s@z.test", rcpts, []byte("x\r\n"), SendOptions{})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(res.Accepted) != 249 || res.Rcpt[150].Code != 550 {
		t.Errorf("accepted %d, rcpt[150] %v", len(res.Accepted), res.Rcpt[150])
	}
	if _, _, _, msgs := b.snapshot(); len(msgs) != 1 || len(msgs[0].rcpts) != 249 {
		t.Errorf("server got %d messages", len(msgs))
	}
}

// selfSigned returns a server TLS config with a fresh self-signed cert.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gosmtp.test"},
		DNSNames:     []string{"gosmtp.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
